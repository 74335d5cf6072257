"""Content security: questions checked before the model is asked, answers while they stream.

- `checkers`: what a checker is (`ContentChecker`, `Verdict`) and which one is configured
  (`CHAT_CONTENT_CHECK`: off, `keywords`, `wechat` or a dotted class path).
- `keywords`: the keyword-list checker (no network; the embedded default's).
- `wechat` and `wechat_token`: WeChat's msgSecCheck v2 and its access token.
- `gate`: the one hook the generation calls, `content_checked`, which wraps the model's
  stream: the question first, then the answer in windows, holding back unchecked text.
- `verdicts`: a verdict stored on its record; a blocked record hidden from its owner.
"""
