"""Transforms: Inception preprocessing and normalisation, and the papers' multi-crop views."""
