"""Save a random-weight pipeline with the ``cpu`` UNet preset (the trained default model's size) for benchmarking.

    python benchmarks/make_cpu_model.py --output /tmp/led-cpu

The scheduler and default step count are copied from ``--like`` (default: the bundled model), so the folder behaves
like the shipped model except for its (random) weights.
"""

from __future__ import annotations

import torch

from diffusers_led import EXPRESSIONS, ExpressionEmbeddings, LocalExpressionPipeline
from diffusers_led.commands import ArgumentParser
from diffusers_led.unet_presets import build_unet


def build_cpu_pipeline(like: str | None = None, preset: str = "cpu", seed: int = 0) -> LocalExpressionPipeline:
    from diffusers_led.pretrained import resolve_model

    reference = LocalExpressionPipeline.from_pretrained(resolve_model(like))
    torch.manual_seed(seed)
    embedding_dim = reference.embeddings.config.embedding_dim
    unet = build_unet(
        preset,
        in_channels=reference.unet.config.in_channels,
        cross_attention_dim=embedding_dim,
        num_class_embeds=reference.unet.config.num_class_embeds,
    )
    embeddings = ExpressionEmbeddings(labels=EXPRESSIONS, embedding_dim=embedding_dim, conditioning_dropout_prob=0.1)
    embeddings.embeddings.data.normal_()
    config = {
        k: v
        for k, v in reference.config.items()
        if not k.startswith("_") and k not in ("unet", "scheduler", "embeddings")
    }
    return LocalExpressionPipeline(unet=unet, scheduler=reference.scheduler, embeddings=embeddings, **config)


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="/tmp/led-cpu")
    parser.add_argument("--like", default=None, help="Model folder to copy the scheduler and settings from.")
    parser.add_argument("--preset", default="cpu", help="UNet preset of diffusers_led.unet_presets.")
    args = parser.parse_args()
    pipe = build_cpu_pipeline(args.like, args.preset)
    pipe.save_pretrained(args.output)
    params = sum(p.numel() for p in pipe.unet.parameters())
    print(
        f"saved {args.output}: UNet preset {args.preset!r}, {params / 1e6:.2f}M parameters, "
        f"scheduler {type(pipe.scheduler).__name__}, {pipe.config.default_num_inference_steps} steps"
    )


if __name__ == "__main__":
    main()
