"""Curated real molecules (SMILES) behind the molecular demo subsets, and fragments to build more.

- `SMALL_CHNO`: C/H/N/O molecules of at most 7 heavy atoms, the chemistry of Transition1x
  (GDB7 reactions). `SMALL_CHNOSCL` adds sulfur and chlorine: QM7-X's elements (H C N O S Cl).
- `DRUGS`: marketed drugs and natural products (ChEMBL-like, as in QMugs), elements
  H C N O F P S Cl Br I.
- `SCAFFOLDS` + `SUBSTITUENTS`: ring systems and groups that `molecules.decorated_molecule`
  joins into new valid molecules for the PubChem3D-like subset (adds Si, as PubChem3D has).
Every entry parses with RDKit (a test checks it).
"""

SMALL_CHNO = (
    "C",
    "CC",
    "CCC",
    "CCCC",
    "CC(C)C",
    "CCCCC",
    "CC(C)(C)C",
    "C=C",
    "C#C",
    "C=CC",
    "CC#C",
    "C=CC=C",
    "C1CC1",
    "C1CCC1",
    "C1CCCC1",
    "C1CCCCC1",
    "c1ccccc1",
    "CO",
    "CCO",
    "CCCO",
    "CC(C)O",
    "OCCO",
    "C=O",
    "CC=O",
    "CCC=O",
    "CC(C)=O",
    "CC(=O)C=C",
    "O=CC=O",
    "OC=O",
    "CC(=O)O",
    "COC",
    "CCOC",
    "C1CO1",
    "C1COC1",
    "C1CCOC1",
    "c1ccoc1",
    "OC1CC1",
    "CC(O)C=O",
    "OCC=O",
    "COC=O",
    "CC(=O)OC",
    "C=CO",
    "CC(=C)O",
    "OC1=CCCC1",
    "N",
    "CN",
    "CCN",
    "CNC",
    "CN(C)C",
    "C=N",
    "CC#N",
    "C#N",
    "NC=O",
    "CC(N)=O",
    "NCCO",
    "NCC(=O)O",
    "CC(N)C(=O)O",
    "c1cc[nH]c1",
    "c1ccncc1",
    "c1cnc[nH]1",
    "C1CCNC1",
    "O=C1CCCN1",
    "NN",
    "NC(N)=O",
    "CC(=O)NC",
    "OCC#N",
    "N#CC=O",
    "C=CC#N",
    "CC=NO",
    "c1cocn1",
    "c1cnoc1",
    "O=C1NC=CC=C1",
    "NC1=CC=CC=C1",
    # six and seven heavy atoms: the bulk of GDB7
    "CCCCCC",
    "CCCCCCC",
    "CC(C)CC(C)C",
    "CCC(C)(C)C",
    "CC(C)C(C)C",
    "CCCCCO",
    "CCCCCCO",
    "CC(C)(C)O",
    "OCC(O)CO",
    "CC(O)C(C)O",
    "CCOCC",
    "CCOC(C)=O",
    "CCCC(=O)O",
    "CCCCC(=O)O",
    "CC(C)CC(=O)O",
    "CC(=O)CC(C)=O",
    "CC1CCCCC1",
    "OC1CCCCC1",
    "O=C1CCCCC1",
    "C1CCOCC1",
    "C1CCCCCC1",
    "Cc1ccccc1",
    "Oc1ccccc1",
    "Nc1ccccc1",
    "CCN(CC)CC",
    "CCCCCN",
    "NCCCCN",
    "CNC(C)=O",
    "CC(=O)N(C)C",
    "O=C1CCCCN1",
    "C1CCNCC1",
    "C1COCCN1",
    "C1CNCCN1",
    "CN1CCCC1",
    "NC(CO)C(=O)O",
    "CC(=O)OC(C)C",
    "CCCOC(C)=O",
    "Cc1ccncc1",
    "Cc1ccco1",
    "Cc1cc[nH]c1",
    "Cn1ccnc1",
    "CC(C)N(C)C",
    "CCC(=O)CC",
    "CCCCC=O",
    "C=CCCC=C",
    "CC(=O)C(C)=O",
    "CC(C)OC(C)C",
    "OCCOCCO",
    "CCC(N)CC",
    "CC(C)CCO",
)

SMALL_CHNOSCL = SMALL_CHNO + (
    "S",
    "CS",
    "CCS",
    "CSC",
    "CSSC",
    "CC(C)S",
    "SCCS",
    "CS(C)=O",
    "CS(=O)(=O)C",
    "c1ccsc1",
    "Cc1ccsc1",
    "C1CCSC1",
    "C1CSC1",
    "NCCS",
    "CSCCO",
    "CC(=O)SC",
    "NC(=S)N",
    "CSC#N",
    "c1cscn1",
    "Cl",
    "CCl",
    "ClCCl",
    "ClC(Cl)Cl",
    "CCCl",
    "ClC=C",
    "CC(Cl)=O",
    "Clc1ccccc1",
    "OCCCl",
    "ClCCCl",
    "ClC1CC1",
    "OC(=O)CCl",
    "O=C(Cl)Cl",
    "ClC#N",
    "CC(Cl)C",
    "ClCC#N",
    "ClC=CCl",
    "Clc1ccncc1",
    "CCCCS",
    "CCSCC",
    "CCCSCC",
    "ClCCCCCl",
    "CC(C)(C)Cl",
    "ClCCCCO",
    "Sc1ccccc1",
    "CCSC(C)=O",
    "CC(C)SC",
    "ClC(Cl)C(Cl)Cl",
    "CCC(Cl)CC",
    "OCCSCCO",
    "C1CCSCC1",
    "CCCCCCl",
    "CSCCN",
    "CC(S)C(=O)O",
    "ClCC(O)CO",
    "CCOC(=O)Cl",
    "CSC(C)C(C)C",
)

DRUGS = (
    "CC(=O)Oc1ccccc1C(=O)O",  # aspirin
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",  # ibuprofen
    "CC(=O)Nc1ccc(O)cc1",  # paracetamol
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",  # caffeine
    "COc1ccc2cc(ccc2c1)C(C)C(=O)O",  # naproxen
    "CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc21",  # diazepam
    "CCN(CC)CC(=O)Nc1c(C)cccc1C",  # lidocaine
    "CC(C)NCC(O)COc1cccc2ccccc12",  # propranolol
    "CNCCC(Oc1ccc(cc1)C(F)(F)F)c1ccccc1",  # fluoxetine
    "CNC1CCC(c2ccc(Cl)c(Cl)c2)c2ccccc12",  # sertraline
    "COc1ccc2[nH]c(nc2c1)S(=O)Cc1ncc(C)c(OC)c1C",  # omeprazole
    "OC(=O)c1cn(C2CC2)c2cc(N3CCNCC3)c(F)cc2c1=O",  # ciprofloxacin
    "CCCc1nn(C)c2c1nc([nH]c2=O)-c1cc(ccc1OCC)S(=O)(=O)N1CCN(C)CC1",  # sildenafil
    "CCCCc1nc(Cl)c(CO)n1Cc1ccc(cc1)-c1ccccc1-c1nn[nH]n1",  # losartan
    "COCCc1ccc(OCC(O)CNC(C)C)cc1",  # metoprolol
    "CC(=O)CC(c1ccccc1)c1c(O)c2ccccc2oc1=O",  # warfarin
    "Cc1ccc(cc1)-c1cc(nn1-c1ccc(cc1)S(N)(=O)=O)C(F)(F)F",  # celecoxib
    "CCC(=C(c1ccccc1)c1ccc(OCCN(C)C)cc1)c1ccccc1",  # tamoxifen
    "OC1(CCN(CCCC(=O)c2ccc(F)cc2)CC1)c1ccc(Cl)cc1",  # haloperidol
    "CN(C)CCCN1c2ccccc2Sc2ccc(Cl)cc21",  # chlorpromazine
    "CN(C)CCCN1c2ccccc2CCc2ccccc21",  # imipramine
    "NC(=O)N1c2ccccc2C=Cc2ccccc21",  # carbamazepine
    "O=C1NC(=O)C(N1)(c1ccccc1)c1ccccc1",  # phenytoin
    "COC(=O)C1=C(C)NC(C)=C(C1c1ccccc1[N+]([O-])=O)C(=O)OC",  # nifedipine
    "COc1ccc(CCN(C)CCCC(C#N)(C(C)C)c2ccc(OC)c(OC)c2)cc1OC",  # verapamil
    "CC(CS)C(=O)N1CCCC1C(=O)O",  # captopril
    "CCOC(=O)C(CCc1ccccc1)NC(C)C(=O)N1CCCC1C(=O)O",  # enalapril
    "NS(=O)(=O)c1cc(C(=O)O)c(NCc2ccco2)cc1Cl",  # furosemide
    "NS(=O)(=O)c1cc2c(cc1Cl)NCNS2(=O)=O",  # hydrochlorothiazide
    "COc1ccc2n(C(=O)c3ccc(Cl)cc3)c(C)c(CC(=O)O)c2c1",  # indomethacin
    "CN1C(C(=O)Nc2ccccn2)=C(O)c2ccccc2S1(=O)=O",  # piroxicam
    "CN1CCCC1c1cccnc1",  # nicotine
    "COC(=O)C1C(OC(=O)c2ccccc2)CC2CCC1N2C",  # cocaine
    "CN1CCC23C4Oc5c3c(CC1C2C=CC4O)ccc5O",  # morphine
    "CC(C)NCC(O)COc1ccc(CC(N)=O)cc1",  # atenolol
    "OC(=O)Cc1ccccc1Nc1c(Cl)cccc1Cl",  # diclofenac
    "CC(C(=O)O)c1cccc(c1)C(=O)c1ccccc1",  # ketoprofen
    "CN(C)CCC=C1c2ccccc2CCc2ccccc21",  # amitriptyline
    "O=C1CN=C(c2ccccn2)c2cc(Br)ccc2N1",  # bromazepam
    "CN(C)CCC(c1ccc(Br)cc1)c1ccccn1",  # brompheniramine
    "CCCCc1oc2ccccc2c1C(=O)c1cc(I)c(OCCN(CC)CC)c(I)c1",  # amiodarone
    "ClCCN(CCCl)P1(=O)NCCCO1",  # cyclophosphamide
    "CNS(=O)(=O)Cc1ccc2[nH]cc(CCN(C)C)c2c1",  # sumatriptan
    "CNC(=C[N+]([O-])=O)NCCSCc1ccc(CN(C)C)o1",  # ranitidine
    "COC(=O)C(c1ccccc1Cl)N1CCc2sccc2C1",  # clopidogrel
    "OC(Cn1cncn1)(Cn1cncn1)c1ccc(F)cc1F",  # fluconazole
    "Nc1nc2n(COCCO)cnc2c(=O)[nH]1",  # acyclovir
    "CCOC(=O)C1=CC(OC(CC)CC)C(NC(C)=O)C(N)C1",  # oseltamivir
    "CC(C)c1c(C(=O)Nc2ccccc2)c(-c2ccccc2)c(-c2ccc(F)cc2)n1CCC(O)CC(O)CC(=O)O",  # atorvastatin
    "COc1cccc(c1)C1(O)CCCCC1CN(C)C",  # tramadol
    "COc1cc2CC(CC3CCN(Cc4ccccc4)CC3)C(=O)c2cc1OC",  # donepezil
    "OCCOCCN1CCN(CC1)C1=Nc2ccccc2Sc2ccccc21",  # quetiapine
    "CCOC(=O)N1CCC(=C2c3ccc(Cl)cc3CCc3cccnc23)CC1",  # loratadine
    "CC12CC(=O)C3C(CCC4=CC(=O)C=CC34C)C1CCC2(O)C(=O)CO",  # prednisone
    "CC12CCC3C(CCC4=CC(=O)CCC34C)C1CCC2O",  # testosterone
    "CC12CCC3c4ccc(O)cc4CCC3C1CCC2O",  # estradiol
    "CC(C)CCCC(C)C1CCC2C1(CCC3C2CC=C4C3(CCC(C4)O)C)C",  # cholesterol
    "Cc1cn(C2CC(N=[N+]=[N-])C(CO)O2)c(=O)[nH]c1=O",  # zidovudine
    "OC(=O)CNCP(O)(O)=O",  # glyphosate
    "CCOP(=S)(OCC)Oc1nc(Cl)c(Cl)cc1Cl",  # chlorpyrifos
    "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1",  # salbutamol
    "CN1C(=O)N(C)c2nc[nH]c2C1=O",  # theophylline
    "Clc1ccc(cc1)C(c1ccccc1)N1CCN(CCOCC(=O)O)CC1",  # cetirizine
    "Fc1ccc(cc1)C(=O)CCCN1CCC(CC1)n1c(=O)[nH]c2ccccc21",  # benperidol
    "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(n1)-c1cccnc1",  # imatinib
    "CC(C)c1nc(nc(c1C=CC(O)CC(O)CC(=O)O)-c1ccc(F)cc1)N(C)S(C)(=O)=O",  # rosuvastatin
    "Clc1cccc(N2CCN(CCCCOc3ccc4CCC(=O)Nc4c3)CC2)c1Cl",  # aripiprazole
    "Cc1nc2CCCCn2c(=O)c1CCN1CCC(CC1)c1noc2cc(F)ccc12",  # risperidone
    "CN1CCN(CC1)C1=Nc2ccccc2Nc2sc(C)cc12",  # olanzapine
    "CN1CCN(CC1)C1=Nc2cc(Cl)ccc2Nc2ccccc12",  # clozapine
    "CCCCC(=O)N(Cc1ccc(cc1)-c1ccccc1-c1nn[nH]n1)C(C(C)C)C(=O)O",  # valsartan
    "COc1ccc(cc1)C1Sc2ccccc2N(CCN(C)C)C(=O)C1OC(C)=O",  # diltiazem
    "CCC(C)(C)C(=O)OC1CC(C)C=C2C=CC(C)C(CCC3CC(O)CC(=O)O3)C12",  # simvastatin
    "NCCCCC(NC(CCc1ccccc1)C(=O)O)C(=O)N1CCCC1C(=O)O",  # lisinopril
    "NC(N)=Nc1nc(CSCCC(N)=NS(N)(=O)=O)cs1",  # famotidine
    "NC(CC(=O)N1CCn2c(C1)nnc2C(F)(F)F)Cc1cc(F)c(F)cc1F",  # sitagliptin
    "COc1cc2ncnc(Nc3ccc(F)c(Cl)c3)c2cc1OCCCN1CCOCC1",  # gefitinib
    "COCCOc1cc2ncnc(Nc3cccc(c3)C#C)c2cc1OCCOC",  # erlotinib
    "CN1CC(=O)N2C(Cc3c([nH]c4ccccc34)C2c2ccc3OCOc3c2)C1=O",  # tadalafil
    "Cc1nccn1CC1CCc2n(C)c3ccccc3c2C1=O",  # ondansetron
    "CCc1ccc(CCOc2ccc(CC3SC(=O)NC3=O)cc2)nc1",  # pioglitazone
)

SCAFFOLDS = (
    "c1ccccc1",
    "c1ccncc1",
    "c1ccc2ccccc2c1",
    "c1ccoc1",
    "c1ccsc1",
    "C1CCCCC1",
    "C1CCNCC1",
    "C1COCCN1",
    "c1cnccn1",
    "c1ccc2[nH]ccc2c1",
    "c1ccc2ncccc2c1",
    "O=C1CCCC1",
    "C1CCOC1",
    "c1nccs1",
    "C1CC1",
    "c1ccc(cc1)-c1ccccc1",
    "O=c1cc[nH]c(=O)[nH]1",
    "c1ncc2nc[nH]c2n1",
    "c1cn[nH]c1",
    "c1ccc2occc2c1",
    "C1CCC2CCCCC2C1",
    "c1ccc2c(c1)CCC2",
    "O=C1NC(=O)CC1",
)

# Attachment through the first atom.
SUBSTITUENTS = (
    "F",
    "Cl",
    "Br",
    "I",
    "C",
    "CC",
    "C(C)C",
    "O",
    "OC",
    "N",
    "N(C)C",
    "C(=O)O",
    "C(=O)N",
    "C(=O)OC",
    "C#N",
    "[N+](=O)[O-]",
    "S(=O)(=O)N",
    "SC",
    "C(F)(F)F",
    "OC(F)(F)F",
    "P(=O)(O)O",
    "[Si](C)(C)C",
    "C(=O)C",
    "NC(=O)C",
    "CO",
    "CN",
    "OCC",
    "c1ccccc1",
    "N1CCOCC1",
    "N1CCNCC1",
    "c1ccncc1",
    "S(C)(=O)=O",
    "OCCN(C)C",
    "CC(=O)O",
    "OC(=O)C",
    "NS(=O)(=O)C",
    "C=C",
    "C#C",
    "O[Si](C)(C)C",
    "CCl",
    "C(C)(C)C",
    "OCO",
)
