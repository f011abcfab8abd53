"""The ensemble: its member matrix (`plan`) and the late-fusion reduce over stored scores (`reduce`)."""
