"""The expression vocabulary and the label-embedding table that conditions the UNet.

The paper conditions its UNet on sentence-transformers embeddings of eight expression words. The
embeddings are computed once (at training time) and stored with the model as the
:class:`ExpressionEmbeddings` component, so inference never needs the text encoder.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

# The vocabulary lives in a module without torch, so that the command line can check a label before importing it.
from .labels import EXPRESSIONS, canonical_expression

# The text fed to the encoder for each label: bare words separate the labels better than phrases.
_ENCODER_TEXT = {label: label for label in EXPRESSIONS}


class UntrainedExpressionError(ValueError):
    """Raised when a model is asked for an expression it was not trained on."""


class ExpressionEmbeddings(ModelMixin, ConfigMixin):
    r"""
    A table of pre-computed label embeddings, saved and loaded with the pipeline like any diffusers model.

    Row ``i`` is the embedding of ``labels[i]``. ``trained_labels`` records which labels the UNet actually saw
    during training, so that asking for another one can be refused. The null embedding used for
    classifier-free guidance is the zero vector (what training substitutes on label dropout).

    Parameters:
        labels (`List[str]`): the labels that have an embedding row.
        embedding_dim (`int`): the size of each embedding (the UNet's ``cross_attention_dim``).
        trained_labels (`List[str]`, *optional*): the labels the model was trained on; defaults to ``labels``.
        text_encoder (`str`, *optional*): the name of the sentence-transformers model that made the table.
        conditioning_dropout_prob (`float`): the label-dropout probability used in training; above zero the
            model knows the null label and supports classifier-free guidance.
    """

    @register_to_config
    def __init__(
        self,
        labels: Sequence[str] = EXPRESSIONS,
        embedding_dim: int = 768,
        trained_labels: Sequence[str] | None = None,
        text_encoder: str | None = None,
        conditioning_dropout_prob: float = 0.0,
    ):
        super().__init__()
        self.labels = [canonical_expression(label) for label in labels]
        self.trained_labels = (
            self.labels if trained_labels is None else [canonical_expression(label) for label in trained_labels]
        )
        self.embeddings = nn.Parameter(torch.zeros(len(self.labels), embedding_dim), requires_grad=False)

    @property
    def supports_guidance(self) -> bool:
        """Whether the model was trained with label dropout, so that classifier-free guidance is meaningful."""
        return self.config.conditioning_dropout_prob > 0

    @classmethod
    def from_text_encoder(
        cls,
        text_encoder: str | object = "sentence-transformers/all-mpnet-base-v2",
        labels: Sequence[str] = EXPRESSIONS,
        trained_labels: Sequence[str] | None = None,
        conditioning_dropout_prob: float = 0.0,
    ) -> ExpressionEmbeddings:
        """Compute the table with a sentence-transformers model (a name, a local path or a loaded model)."""
        from .text_encoder import load_sentence_encoder

        encoder, encoder_name = load_sentence_encoder(text_encoder)
        labels = [canonical_expression(label) for label in labels]
        # `encode` returns inference tensors; clone them so they can live in a trainable module.
        vectors = encoder.encode([_ENCODER_TEXT[label] for label in labels], convert_to_tensor=True).cpu().clone()
        table = cls(
            labels=labels,
            embedding_dim=vectors.shape[1],
            trained_labels=trained_labels,
            text_encoder=encoder_name,
            conditioning_dropout_prob=conditioning_dropout_prob,
        )
        table.embeddings.data.copy_(vectors.float())
        return table

    def resolve(self, targets: str | Sequence[str], allow_untrained: bool = False) -> list[str]:
        """Canonicalise ``targets`` and check that the table has them and the model was trained on them."""
        targets = [targets] if isinstance(targets, str) else list(targets)
        resolved = [canonical_expression(target) for target in targets]
        for name, label in zip(targets, resolved):
            if label not in self.labels:
                raise UntrainedExpressionError(
                    f"Expression {name!r} has no embedding in this model; it has: {', '.join(self.labels)}."
                )
            if label not in self.trained_labels:
                message = (
                    f"This model was not trained on {label!r} (trained on: {', '.join(self.trained_labels)}); "
                    "its edits toward it are unreliable."
                )
                if not allow_untrained:
                    raise UntrainedExpressionError(
                        message + " To try anyway: `allow_untrained_targets=True` in Python, "
                        "`--allow-untrained-targets` with led-edit or led-evaluate."
                    )
                warnings.warn(message, stacklevel=3)
        return resolved

    def forward(self, targets: str | Sequence[str], allow_untrained: bool = False) -> torch.Tensor:
        """Return the embeddings of ``targets`` as ``(batch, 1, embedding_dim)``, the UNet's
        ``encoder_hidden_states``."""
        resolved = self.resolve(targets, allow_untrained=allow_untrained)
        index = torch.tensor([self.labels.index(label) for label in resolved], device=self.embeddings.device)
        return self.embeddings[index].unsqueeze(1)

    def null_embedding(self, batch_size: int = 1) -> torch.Tensor:
        """The unconditional embedding (zeros) for classifier-free guidance, ``(batch, 1, embedding_dim)``."""
        return self.embeddings.new_zeros(batch_size, 1, self.config.embedding_dim)

    def negative_embeddings(self, negatives: Sequence[str]) -> torch.Tensor:
        """What classifier-free guidance pushes away from, one per crop, ``(batch, 1, embedding_dim)``: the null
        embedding for ``""`` and the label's own embedding otherwise (like ``negative_prompt`` in diffusers)."""
        embeddings = self.null_embedding(len(negatives))
        named = [i for i, negative in enumerate(negatives) if negative]
        if named:
            embeddings[named] = self([negatives[i] for i in named], allow_untrained=True)
        return embeddings
