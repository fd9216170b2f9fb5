"""Launcher environment detection (Slurm, Open MPI, MPICH, torchrun) and communication backends."""
