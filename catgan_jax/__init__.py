"""catgan_jax: GANs for cat images in JAX/Flax."""
