"""`fixed`: windows of at most `tokens` tokens over the whole text, each starting `overlap`
tokens before the previous one ended. Windows are cut between words (a whitespace-free run
longer than 24 characters, such as CJK text, is cut every 24 characters). Where a window
ends is first guessed from the learnt tokens-per-character ratio, then fitted on the exact
count (`_spans.Tokens.fit`), so a window costs a few tokenizer calls, not one per word.
"""

from __future__ import annotations

import bisect

from gatewise.rag.chunkers._build import ChunkBuilder, Piece
from gatewise.rag.chunkers._spans import Count, hard_cut, words
from gatewise.rag.types import Chunk, LoadedDocument


class FixedChunker:
    def __init__(self, *, tokens: int, overlap: int, count: Count) -> None:
        self.name = "fixed"
        self.tokens = tokens
        self.overlap = overlap
        self.count = count
        self.settings = f"fixed:{tokens}:{overlap}"

    def chunk(self, document: LoadedDocument) -> list[Chunk]:
        b = ChunkBuilder(document, self.count)
        tk, budget = b.tokens, self.tokens
        ws = words(b.text, 0, len(b.text))
        ends = [w[1] for w in ws]
        starts = [w[0] for w in ws]
        pieces: list[Piece] = []
        i, n = 0, len(ws)
        while i < n:
            guess = bisect.bisect_right(ends, ws[i][0] + budget / max(tk.ratio, 1e-3)) - 1
            j, exact = tk.fit(ws, ends, i, max(i, min(n - 1, guess)), budget, full=0.98)
            if exact > budget:  # one piece alone is over a (tiny) budget
                pieces.extend(Piece(a, e, t) for (a, e), t in hard_cut(tk, ws[i][0], ws[i][1], budget))
            else:
                pieces.append(Piece(ws[i][0], ws[j][1], exact))
            if j == n - 1:
                break
            if self.overlap <= 0:
                i = j + 1
                continue
            # The overlap's first word: about `overlap` tokens before the window's end.
            k = bisect.bisect_left(starts, ws[j][1] - self.overlap / max(tk.ratio, 1e-3))
            i = max(i + 1, min(k, j + 1))
        return b.make(pieces)
