import pytest
import torch

from diffusers_led import EXPRESSIONS, ExpressionEmbeddings, UntrainedExpressionError, canonical_expression


@pytest.mark.parametrize(
    "name, expected",
    [
        ("happy", "happy"),
        ("Joy", "happy"),
        ("HAPPINESS", "happy"),
        (" contempt ", "contemptuous"),
        ("anger", "angry"),
        ("fear", "fearful"),
        ("disgust", "disgusted"),
        ("sadness", "sad"),
        ("surprise", "surprised"),
        ("calm", "neutral"),
    ],
)
def test_aliases_map_to_the_paper_labels(name, expected):
    assert canonical_expression(name) == expected


def test_unknown_expression_lists_the_known_ones():
    with pytest.raises(ValueError) as error:
        canonical_expression("smug")
    assert "smug" in str(error.value)
    for label in EXPRESSIONS:
        assert label in str(error.value)


def test_embeddings_round_trip_and_lookup(tmp_path):
    table = ExpressionEmbeddings(labels=EXPRESSIONS, embedding_dim=4, trained_labels=["happy", "neutral"])
    table.embeddings.data = torch.arange(32, dtype=torch.float32).reshape(8, 4)
    table.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = ExpressionEmbeddings.from_pretrained(tmp_path)
    assert loaded.trained_labels == ["happy", "neutral"]
    vectors = loaded(["joy", "neutral"])
    assert vectors.shape == (2, 1, 4)
    assert torch.equal(vectors[0, 0], torch.tensor([16.0, 17.0, 18.0, 19.0]))  # "happy" is row 4
    assert torch.equal(loaded.null_embedding(3), torch.zeros(3, 1, 4))


def test_untrained_label_is_refused_unless_allowed():
    table = ExpressionEmbeddings(labels=EXPRESSIONS, embedding_dim=4, trained_labels=["happy"])
    with pytest.raises(UntrainedExpressionError, match="not trained on 'sad'"):
        table(["sad"])
    with pytest.warns(UserWarning, match="not trained on 'sad'"):
        assert table(["sad"], allow_untrained=True).shape == (1, 1, 4)
    missing = ExpressionEmbeddings(labels=["happy", "neutral"], embedding_dim=4)
    with pytest.raises(UntrainedExpressionError, match="no embedding"):
        missing(["angry"])
