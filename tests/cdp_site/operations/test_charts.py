"""Server-side SVG charts: points, threshold, gaps, min/max/last, and escaped text."""

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from cdp_site.charts import BOTTOM, LEFT, RIGHT, TOP, format_value, line_chart, sparkline

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)  # also proves the markup is well-formed XML


def test_line_chart_places_points_threshold_and_summary():
    width, height = LEFT + RIGHT + 100, TOP + BOTTOM + 100  # a 100 x 100 plot area
    points = [(START, 0.0), (START + timedelta(hours=1), 5.0), (START + timedelta(hours=2), 10.0)]
    svg = line_chart(
        title="Pending raw events",
        points=points,
        start=START,
        end=START + timedelta(hours=2),
        unit="count",
        threshold=5,
        width=width,
        height=height,
    )
    root = parse(svg)
    (polyline,) = root.iter(f"{SVG}polyline")
    # x: 0, 50 and 100 % of the plot; y: 0 at the bottom, 10 (the maximum) at the top.
    assert polyline.get("points") == f"{LEFT},{TOP + 100} {LEFT + 50},{TOP + 50} {LEFT + 100},{TOP}"
    (threshold,) = [line for line in root.iter(f"{SVG}line") if line.get("class") == "threshold"]
    assert (threshold.get("y1"), threshold.get("y2")) == (str(TOP + 50), str(TOP + 50))
    assert threshold.get("stroke") == "#b42318"
    assert root.find(f"{SVG}title").text == "Pending raw events"
    description = root.find(f"{SVG}desc").text
    assert description == "3 points from 2026-03-01 00:00 to 2026-03-01 02:00 UTC; last 10, min 0, max 10; threshold 5"
    assert [text.text for text in root.iter(f"{SVG}text") if text.get("class") == "legend"] == [
        "last 10 · min 0 · max 10"
    ]
    # Axis labels: the y range and the two ends of the time range.
    labels = {text.text for text in root.iter(f"{SVG}text")}
    assert {"0", "5", "10", "03-01 00:00", "03-01 02:00"} <= labels
    assert root.get("role") == "img" and root.get("aria-labelledby").endswith("-desc")


def test_gaps_break_the_line_and_lone_points_are_dots():
    points = [
        (START, 1.0),
        (START + timedelta(minutes=5), 2.0),
        (START + timedelta(minutes=10), None),
        (START + timedelta(minutes=15), 3.0),
    ]
    root = parse(line_chart(title="t", points=points, start=START, end=START + timedelta(minutes=15)))
    assert len(list(root.iter(f"{SVG}polyline"))) == 1
    circles = list(root.iter(f"{SVG}circle"))
    assert len(circles) == 2  # the lone point after the gap, and the marker of the last value
    assert "3 points" in root.find(f"{SVG}desc").text


def test_labels_are_escaped():
    title = '<script>alert("x")</script> & co'
    svg = line_chart(title=title, points=[(START, 1.0)], start=START, end=START + timedelta(hours=1), threshold=None)
    assert "<script>" not in svg
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in svg
    assert parse(svg).find(f"{SVG}title").text == title
    spark = sparkline(title=title, values=[1, 2])
    assert "<script>" not in spark and parse(spark).find(f"{SVG}title").text == title


def test_empty_chart_says_so():
    root = parse(line_chart(title="t", points=[], start=START, end=START + timedelta(hours=1)))
    assert [text.text for text in root.iter(f"{SVG}text")] == ["No data in this range yet"]
    assert root.find(f"{SVG}desc").text.startswith("0 points")


def test_sparkline_points():
    root = parse(sparkline(title="Freshness: pos", values=[0, None, 10, 10], width=104, height=24))
    polylines = [line.get("points") for line in root.iter(f"{SVG}polyline")]
    assert polylines == ["68.7,2 102,2"]  # after the gap; the first value is a lone dot
    (dot,) = root.iter(f"{SVG}circle")
    assert (dot.get("cx"), dot.get("cy")) == ("2", "22")


def test_format_value():
    assert format_value(0.0525, "ratio") == "5.2%"
    assert format_value(4.8, "seconds") == "4.8 s"
    assert format_value(600, "seconds") == "10.0 min"
    assert format_value(3 * 3600, "seconds") == "3.0 h"
    assert format_value(250, "ms") == "250 ms"
    assert format_value(1500, "ms") == "1.5 s"
    assert format_value(1234, "count") == "1,234"
    assert format_value(1, "flag") == "breached"
    assert format_value(None, "count") == "–"
