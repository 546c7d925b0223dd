"""The LightningCLI recipes, installed as `inception_lightning.conf` so that an installed wheel
has them too: `inception-lightning fit -c quickstart` (see `inception_lightning.recipes`)."""
