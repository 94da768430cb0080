"""LaMM: semi-supervised pre-training and fine-tuning of neural network potentials.

Units everywhere inside the package: energies in eV, lengths in Angstrom, forces in eV/Angstrom.
Readers convert at the edges (e.g. QMugs energies in Hartree).
"""

__version__ = "0.1.0"
