"""The bottleneck verdict of a step split: data, communication, compute, or unsplit."""
import pytest

from jeoparda.training.bottleneck import COMMUNICATION_SHARE, DATA_SHARE, SENTENCES, split, verdict


def test_split_leaves_communication_as_the_rest_never_negative():
    assert split(1.0, 0.1, 0.6) == pytest.approx({"step_s": 1.0, "data_wait_s": 0.1, "compute_s": 0.6,
                                                  "communication_s": 0.3})
    assert split(1.0, 0.1, 0.95)["communication_s"] == 0.0  # timing noise: compute alone ran longer
    assert split(1.0, 0.1, None)["communication_s"] is None


@pytest.mark.parametrize("parts, world, key", [
    (split(1.0, DATA_SHARE, 0.7), 4, "data"),                       # at the threshold
    (split(1.0, 0.5, None), 4, "data"),                             # a training run: data wait is known
    (split(1.0, 0.3, 0.2), 4, "communication"),                     # communication 0.5 outweighs data 0.3
    (split(1.0, 0.1, 1.0 - 0.1 - COMMUNICATION_SHARE), 4, "communication"),
    (split(1.0, 0.05, 0.9), 4, "compute"),
    (split(1.0, 0.05, 0.95), 1, "compute"),                         # one worker: nothing to communicate
    (split(1.0, 0.05, None), 1, "compute"),
    (split(1.0, 0.05, None), 4, "unsplit"),                         # several workers, compute not timed
    (split(0.0, 0.0, None), 4, "unsplit"),
])
def test_each_verdict(parts, world, key):
    got, sentence = verdict(parts, world)
    assert got == key and sentence == SENTENCES[key]


def test_sentences_say_what_to_try():
    assert "data.workers" in SENTENCES["data"] and "node-local" in SENTENCES["data"]
    assert "larger batch per worker" in SENTENCES["communication"] and "NCCL" in SENTENCES["communication"]
    assert "bench train" in SENTENCES["unsplit"]
