"""Answers rendered for staff: Markdown as HTML, with nothing in it that runs or loads."""

import pytest

from chat.markdown import markdown_to_plain_text, markdown_to_safe_html


def test_markdown_becomes_html_a_reader_expects():
    html = markdown_to_safe_html(
        "## 标题\n**粗体** 和 `代码`\n\n- 一\n- 二\n\n| a | b |\n|:-|-:|\n| 1 | 2 |\n\n"
        "```py\nprint('你好')\n```\n~~删除~~"
    )

    for fragment in (
        "<h2>标题</h2>",
        "<strong>粗体</strong>",
        "<code>代码</code>",
        "<li>一</li>",
        '<td style="text-align:right">2</td>',
        "<pre><code>print('你好')\n</code></pre>",
        "<s>删除</s>",
    ):
        assert fragment in html


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("<script>alert(1)</script>", "<script"),
        ('<img src=x onerror="alert(1)">', "<img"),
        ("[点我](javascript:alert(1))", 'href="javascript'),
        ('<a href="https://x" onclick="alert(1)">x</a>', "<a href"),
        ("![pic](https://tracker.example/p.png)", "<img"),
        ('[x](<https://e.com" onmouseover="alert(1)>)', '" onmouseover'),
        ("<style>body{display:none}</style>", "<style"),
        ("<iframe src=https://evil></iframe>", "<iframe"),
    ],
)
def test_nothing_that_runs_or_loads_survives(source: str, forbidden: str):
    assert forbidden not in markdown_to_safe_html(source)


def test_links_stay_links_that_open_nothing_of_ours_and_images_become_links():
    html = markdown_to_safe_html(
        "[文档](https://docs.example/a?b=1&c=2) ![猫](https://e.com/cat.png)"
    )

    assert (
        '<a href="https://docs.example/a?b=1&amp;c=2" rel="noopener noreferrer nofollow">文档</a>'
        in html
    )
    image = '<a href="https://e.com/cat.png" rel="noopener noreferrer nofollow">[image: 猫]</a>'
    assert image in html


def test_raw_html_is_shown_as_text():
    assert "&lt;b&gt;not bold&lt;/b&gt;" in markdown_to_safe_html("<b>not bold</b>")


def test_plain_text_keeps_the_words_and_drops_the_marks_and_markup():
    text = markdown_to_plain_text("## 标题\n**粗体** & <b>x</b>\n\n- 一\n- 二\n\n```\na < b\n```")

    assert text == "标题 粗体 & <b>x</b> 一 二 a < b"
