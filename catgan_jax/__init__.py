"""catgan_jax: GANs for cat images in JAX/Flax.

Importing the package changes no process-wide setting; the entry points call
`catgan_jax.cli.configure()` first.
"""
