"""Launcher environment detection (Slurm, Open MPI, MPICH, torchrun), communication backends, and the
distributed shell every command shares (rank 0 decides, run folders, replica digests)."""
