"""What each node does outside the model calls: inversion, the sampler loop, FreeU, masks, pictures."""
