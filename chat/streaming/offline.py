"""The offline demo model: a clearly labelled canned answer streamed at a realistic pace.

It lets the whole product (server, mini-program, web-view page) run with no key and no
network. The answer covers what renderers trip over: Markdown lists, a code block, CJK,
emoji and newlines.
"""

import asyncio
import re
from collections.abc import AsyncIterator

from django.conf import settings

from chat.streaming.upstream import UpstreamChunk, Usage

# ASCII words with their trailing spaces, runs of newlines, and every other character
# (CJK, punctuation, emoji) on its own: roughly how real models tokenize.
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_]+[ \t]*|\n+|[ \t]+|.", re.DOTALL)

_ANSWER_TEMPLATE = """\
> 🧪 **离线演示 · Offline demo** — no model is configured, so this answer is canned.

你问的是：「{question}」

这是一个打字机效果的演示回答，逐字流式返回 ✨：

1. **服务器**：Django + ASGI，`StreamingHttpResponse` 按 SSE 事件实时推送；
2. **小程序**：`wx.request` 开启 `enableChunked`，按字节解码，中文不会乱码；
3. **网页**：web-view 页面同样实时显示。

```python
async for event in stream:
    print(event["text"], end="")
```

To use a real model, set `LLM_API_KEY` (and `LLM_BASE_URL`, `LLM_MODEL`) and restart. 🚀
"""


def offline_answer(question: str) -> str:
    shown = question if len(question) <= 80 else question[:80] + "…"
    return _ANSWER_TEMPLATE.format(question=shown)


def offline_tokens(text: str) -> list[str]:
    return _TOKEN_PATTERN.findall(text)


async def offline_stream(
    messages: list[dict], *, read_every: float = 0.0
) -> AsyncIterator[list[UpstreamChunk]]:
    """Tokens at CHAT_OFFLINE_TOKENS_PER_SECOND on a fixed schedule; each step returns
    every token due by then, as one read of a real upstream's socket would."""
    question = str(messages[-1]["content"]) if messages else ""
    tokens = offline_tokens(offline_answer(question))
    pause = 1.0 / settings.CHAT_OFFLINE_TOKENS_PER_SECOND
    loop = asyncio.get_running_loop()
    started_at, sent = loop.time(), 0
    while sent < len(tokens):
        next_due_at = started_at + (sent + 1) * pause
        await asyncio.sleep(max(0.0, next_due_at - loop.time()))
        due = max(sent + 1, min(len(tokens), int((loop.time() - started_at) / pause)))
        read_at = loop.time()
        yield [UpstreamChunk(text=token) for token in tokens[sent:due]]
        sent = due
        if read_every:
            await asyncio.sleep(max(0.0, read_at + read_every - loop.time()))
    prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
    usage = Usage(prompt_tokens=max(1, prompt_chars // 2), completion_tokens=len(tokens))
    yield [UpstreamChunk(finish_reason="stop", usage=usage)]
