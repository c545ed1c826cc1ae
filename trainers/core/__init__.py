"""Pure tensor numerics shared by the trainers: advantage estimators, loss terms, their registries."""
