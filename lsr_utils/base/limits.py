"""How large a size read from outside may be (options, a received config.json, a generated dataset's size).

Each limit is far above anything the paper or a laptop needs; sizes are checked against them before anything is
allocated, as a guard against a damaged or hostile configuration. Raise one here if a machine of yours
legitimately goes beyond.
"""

LIMITS = {"latent_dim": 4096, "epochs": 100_000, "batch_size": 65_536, "n_train": 20_000_000,
          "generated_images": 2_000_000, "samples": 1000, "width": 1024, "classes": 100_000}
