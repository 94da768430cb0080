"""The periodic table the universal demo data draws from: element roles and oxidation states.

Users' materials data are mostly metals and alloys, oxides, and other inorganic compounds
(nitrides, carbides, chalcogenides, halides, pnictides, semiconductors); molecules come from
the xTB subsets. The pools below cover the s, p and d blocks, light and heavy, plus three
f-block elements MPtrj labels well (La, Ce, Gd): 65 elements in all (`all_elements`).

Oxidation states are the common ones (Greenwood & Earnshaw); they only make formulas charge
balanced so that compounds look like the ones users compute, they do not enter any label.
"""

from __future__ import annotations

# metal -> its common positive oxidation states
CATIONS: dict[str, tuple[int, ...]] = {
    # s block
    "Li": (1,), "Na": (1,), "K": (1,), "Rb": (1,), "Cs": (1,),
    "Be": (2,), "Mg": (2,), "Ca": (2,), "Sr": (2,), "Ba": (2,),
    # d block
    "Sc": (3,), "Ti": (2, 3, 4), "V": (2, 3, 4, 5), "Cr": (2, 3), "Mn": (2, 3, 4),
    "Fe": (2, 3), "Co": (2, 3), "Ni": (2,), "Cu": (1, 2), "Zn": (2,),
    "Y": (3,), "Zr": (4,), "Nb": (3, 5), "Mo": (4, 6), "Ru": (3, 4), "Rh": (3,),
    "Pd": (2,), "Ag": (1,), "Cd": (2,),
    "Hf": (4,), "Ta": (5,), "W": (4, 6), "Re": (4,), "Os": (4,), "Ir": (3, 4),
    "Pt": (2, 4), "Au": (1, 3), "Hg": (2,),
    # f block (MPtrj labels these without +U on the f shell)
    "La": (3,), "Ce": (3, 4), "Gd": (3,),
    # p block
    "B": (3,), "Al": (3,), "Ga": (3,), "In": (3,), "Tl": (1, 3),
    "Si": (4,), "Ge": (4,), "Sn": (2, 4), "Pb": (2, 4), "Sb": (3,), "Bi": (3,),
}  # fmt: skip

# non-metal -> its negative oxidation state as an anion
ANIONS: dict[str, int] = {
    "H": -1, "C": -4, "N": -3, "P": -3, "As": -3, "Sb": -3,
    "O": -2, "S": -2, "Se": -2, "Te": -2,
    "F": -1, "Cl": -1, "Br": -1, "I": -1,
}  # fmt: skip

# Elements whose elemental solid is a metal (bcc, fcc or hcp here).
METALS: tuple[str, ...] = tuple(s for s in CATIONS if s not in ("B", "Si", "Ge", "Sb"))
# Group-IV elements (diamond) and the III-V, II-VI families of tetrahedral semiconductors.
TETRAHEDRAL_ELEMENTS: tuple[str, ...] = ("C", "Si", "Ge", "Sn")
III_V = (("B", "Al", "Ga", "In"), ("N", "P", "As", "Sb"))
II_VI = (("Be", "Mg", "Zn", "Cd", "Hg"), ("O", "S", "Se", "Te"))
# OC20's bulk materials: metals, intermetallics and compounds with these non-metals.
OC20_NONMETALS: tuple[str, ...] = ("H", "B", "C", "N", "P", "S", "Se", "As", "Te", "Si")
# Cations of the oxides (OC22 covers the transition, rare-earth and p-block metal oxides).
OXIDE_CATIONS: tuple[str, ...] = tuple(s for s in CATIONS if s not in ("B", "Cs", "Rb"))


def all_elements() -> tuple[str, ...]:
    """Every element some universal generator can place, in first-seen order."""
    seen = dict.fromkeys([*CATIONS, *ANIONS, *TETRAHEDRAL_ELEMENTS])
    return tuple(seen)
