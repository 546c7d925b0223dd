"""`python -m inception_lightning`."""

from inception_lightning.cli import main

main()
