"""Learned super-resolution of the 20 m and 60 m bands (DSen2-like), trained by Wald's protocol."""
