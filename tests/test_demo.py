"""The demo's sentence scoring (``keras_ssl.demo``): counts, sentence sets, argument defaults."""

from keras_ssl import demo


class _Answers:
    """A stand-in masked LM whose fill-mask answers are given per sentence."""

    def __init__(self, answers):
        self.answers = answers
        self.asked = None

    def fill_mask(self, texts, top_k=5):
        self.asked = (list(texts), top_k)
        return [[{"token_str": token} for token in self.answers[text][:top_k]] for text in texts]


def test_hits_count_ranks_within_top_3_and_top_5():
    sentences = (("a [MASK].", "x"), ("b [MASK].", "y"), ("c [MASK].", "z"), ("d [MASK].", "w"))
    model = _Answers({"a [MASK].": ["x", "p", "q", "r", "s"],   # rank 1
                      "b [MASK].": ["p", "q", "y", "r", "s"],   # rank 3
                      "c [MASK].": ["p", "q", "r", "s", "z"],   # rank 5: top 5 only
                      "d [MASK].": ["p", "q", "r", "s", "t"]})  # missing
    assert demo._hits(demo._answers(model, sentences), sentences) == {"top_3": 2, "top_5": 3, "sentences": 4}
    assert model.asked == (["a [MASK].", "b [MASK].", "c [MASK].", "d [MASK]."], 5)


def test_every_demo_sentence_has_one_mask_and_a_distinct_expected_word():
    pairs = demo.SENTENCES + demo.MORE_SENTENCES
    assert len(pairs) == 16 and len({sentence for sentence, _ in pairs}) == 16
    assert all(sentence.count("[MASK]") == 1 and word and " " not in word for sentence, word in pairs)
    assert len({word for _, word in pairs}) == 16


def test_every_expected_word_is_one_minilm_token(minilm_tokenizer):
    """A word the tokenizer splits could never be a fill-mask answer."""
    for _, word in demo.SENTENCES + demo.MORE_SENTENCES:
        assert minilm_tokenizer.tokenize(word) == [word], word


def test_the_more_sentences_print_with_their_hits(capsys):
    answers = [["x", "y", "z"]] * len(demo.MORE_SENTENCES)
    answers[0] = ["loop", demo.MORE_SENTENCES[0][1], "next"]  # the expected word 2nd
    demo._print_more(answers)
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    assert len(lines) == len(demo.MORE_SENTENCES)
    assert lines[0].startswith("  * " + demo.MORE_SENTENCES[0][0])
    assert lines[0].endswith(f"-> loop, {demo.MORE_SENTENCES[0][1]}, next")
    assert all(line.startswith("    ") for line in lines[1:])  # no hit, no star
