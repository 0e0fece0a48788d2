from admin_ui.charts import bar_chart, column_chart


def test_bar_chart_scales_to_the_longest_and_sorts():
    c = bar_chart("t", [("a", 5), ("b", 10), ("c", 0)])
    assert [b.label for b in c.bars] == ["b", "a", "c"]
    assert [b.width for b in c.bars] == [100.0, 50.0, 0.0]
    assert [b.y for b in c.bars] == [0, 22, 44]


def test_bar_chart_limit_and_empty():
    assert len(bar_chart("t", [(str(i), i) for i in range(30)], limit=5).bars) == 5
    assert bar_chart("t", []).empty


def test_column_chart():
    cols = column_chart([("00", 0), ("01", 4), ("02", 2)])
    assert [c.height for c in cols] == [0.0, 100.0, 50.0]
    assert cols[1].x == 33.33
