from tagloop.plots.confusion import ANNOTATE_UP_TO, confusion_heatmap, confusion_summary

LABELS = ["ACCESS", "BILLING", "EMAIL"]
MATRIX = [[7, 0, 0], [0, 6, 1], [1, 2, 4]]


def test_the_heatmap_shows_every_label_and_every_non_zero_count(parse):
    drawn = parse(confusion_heatmap(LABELS, MATRIX))
    for label in LABELS:
        assert drawn.texts.count(label) == 2  # a row and a column
    counts = sorted(int(t) for t in drawn.texts if t.isdigit())  # the colour bar's ticks are 0.0-1.0
    assert counts == sorted(c for row in MATRIX for c in row if c)
    assert "predicted label" in drawn.texts and "true label" in drawn.texts
    assert drawn.title == confusion_summary(LABELS, MATRIX)
    assert drawn.title == (
        "Confusion matrix of 3 labels on 21 test documents: 17 on the diagonal (81.0%). "
        "Largest confusion: EMAIL predicted as BILLING (2)."
    )


def test_a_label_is_text_never_markup(parse):
    evil = ["<script>x</script>", "B&B"]
    svg = confusion_heatmap(evil, [[1, 0], [0, 1]], alt="x")
    assert "<script>" not in svg
    assert evil[0] in parse(svg).texts and "B&B" in parse(svg).texts


def test_many_labels_drop_the_cell_counts(parse):
    n = ANNOTATE_UP_TO + 1
    labels = [f"L{i}" for i in range(n)]
    matrix = [[5 if i == j else 0 for j in range(n)] for i in range(n)]
    drawn = parse(confusion_heatmap(labels, matrix))
    assert "5" not in drawn.texts and drawn.texts.count("L0") == 2


def test_a_long_label_is_cut_on_the_ticks_and_whole_in_the_alt_text(parse):
    long = "a label of far more than twenty-four characters"
    drawn = parse(confusion_heatmap([long, "B"], [[1, 1], [0, 1]]))
    assert drawn.texts.count("a label of far more tha…") == 2
    assert long in drawn.title
