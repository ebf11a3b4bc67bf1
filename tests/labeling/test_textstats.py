from labeling.textstats import copy_overlap, text_length, words


def test_words_lowercase_and_strip_punctuation():
    assert words("The cat, the HAT!") == ["the", "cat", "the", "hat"]


def test_copy_overlap_counts_shared_trigrams():
    context = "the quick brown fox jumps over the lazy dog"
    # trigrams of the text: (the quick brown) (quick brown cat) -> one of two is in the context
    assert copy_overlap(context, "The quick brown cat") == 0.5
    assert copy_overlap(context, "quick brown fox jumps") == 1.0
    assert copy_overlap(context, "a wholly new sentence") == 0.0


def test_copy_overlap_short_and_empty_texts():
    assert copy_overlap("red apple pie", "apple") == 1.0  # falls back to unigrams
    assert copy_overlap("red apple pie", "") == 0.0
    assert copy_overlap("", "anything at all") == 0.0


def test_text_length_trims():
    assert text_length("  four\n") == 4


def test_copy_overlaps_equals_copy_overlap_per_text():
    """The batched form used by the dashboards gives exactly copy_overlap's numbers."""
    import random

    from labeling.textstats import copy_overlaps

    rng = random.Random(7)
    vocabulary = ["the", "cat", "sat", "on", "mat", "and", "dog", "ran", "A", "B!"]
    for _ in range(200):
        context = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 30)))
        texts = [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 8))) for _ in range(4)]
        assert copy_overlaps(context, texts) == [copy_overlap(context, t) for t in texts]
