import numpy as np
import pytest

from diffusers_led.channels import channel_max, channel_mean


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channel_mean_and_max_match_numpy_to_the_bit(channels, dtype):
    image = (np.random.default_rng(channels).random((37, 41, channels)) * 300 - 20).astype(dtype)
    for view in (image, image[:, ::2, : max(1, channels - 1)]):  # also a strided slice, as of an RGBA's colour
        mean, largest = channel_mean(view), channel_max(view)
        assert mean.dtype == view.mean(axis=2).dtype and np.array_equal(mean, view.mean(axis=2))
        assert np.array_equal(largest, view.max(axis=2))
