"""The copy variant's pretraining documents (training.rlhf.experiment): TL;DR posts and copy drills."""
from training.rlhf.evaluate import TLDR
from training.rlhf.experiment import SUMMARY_WORDS, CopyStage, copy_drills, copy_stage_documents, tldr_documents

DOCS = [f"document {i} says alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu" for i in range(30)]
POSTS = [f"post {i} tells of one two three four five six seven eight nine ten eleven twelve{TLDR}" for i in range(40)]


def test_extractive_summaries_are_the_posts_first_words():
    docs = tldr_documents(POSTS, DOCS, CopyStage(1, tldr_share=1.0, extractive_share=1.0, drill_share=0.0), 0, TLDR)
    assert len(docs) == len(POSTS)
    for post, doc in zip(POSTS, docs):
        assert doc.startswith(post + " ")
        summary = doc[len(post) + 1:].split()
        assert SUMMARY_WORDS[0] <= len(summary) <= SUMMARY_WORDS[1]
        assert summary == post.removesuffix(TLDR).split()[:len(summary)]  # the lead, never the cue


def test_other_summaries_come_from_other_documents_and_shares_hold():
    docs = tldr_documents(POSTS, DOCS, CopyStage(1, tldr_share=1.0, extractive_share=0.0, drill_share=0.0), 0, TLDR)
    assert all(doc.split(TLDR + " ")[1].startswith("document ") for doc in docs)
    assert tldr_documents(POSTS, DOCS, CopyStage(1, 0.0, 1.0, 0.0), 0, TLDR) == []
    half = tldr_documents(POSTS * 25, DOCS, CopyStage(1, 0.5, 0.5, 0.0), 0, TLDR)
    assert 400 <= len(half) <= 600
    copied = sum(doc.split(TLDR + " ")[1].startswith("post ") for doc in half)
    assert 0.35 < copied / len(half) < 0.65


def test_copy_drills_repeat_their_words_after_the_cue():
    drills = copy_drills(DOCS, 50, seed=1, cue=TLDR)
    assert len(drills) == 50
    vocab = {w for d in DOCS for w in d.split()}
    for drill in drills:
        first, second = drill.split(TLDR + " ")
        assert first == second and 5 <= len(first.split()) <= 14 and set(first.split()) <= vocab
    assert copy_drills(DOCS, 50, seed=1, cue=TLDR) == drills  # seeded
    assert copy_drills(["123 456"], 5, seed=1, cue=TLDR) == []  # no words to drill with


def test_a_stage_is_the_corpus_plus_its_posts_and_drills():
    stage = CopyStage(1, tldr_share=1.0, extractive_share=0.5, drill_share=0.5)
    docs = copy_stage_documents(DOCS, POSTS, stage, 3, TLDR)
    assert len(docs) == len(DOCS) + len(POSTS) + len(DOCS) // 2
    assert sorted(d for d in docs if d in DOCS) == sorted(DOCS)
    assert docs == copy_stage_documents(DOCS, POSTS, stage, 3, TLDR) != copy_stage_documents(DOCS, POSTS, stage, 4, TLDR)
