"""Prompt embeddings for the pipeline, built by compel from A1111's prompt language.

``syntax = "a1111"``: :mod:`qeuopt.config.prompt_syntax` reads the prompt by A1111's
rules into weighted fragments per BREAK part; compel turns each part into 77-token chunks
(``truncate_long_prompts=False``, each chunk encoded alone with its own start and end
tokens, as A1111 does) and applies the weights; the parts are concatenated. ``"compel"``
hands the text to compel's own parser (``(x)1.3``, ``x++``, ``.blend()``). ``"plain"``
passes the text to diffusers untouched (cut at 77 tokens).

Where this differs from A1111, on purpose or by compel's design (see README "Prompt syntax"):
weights follow compel's rule (a weight w > 1 moves a token's embedding away from the empty
prompt's by w; w < 1 blends towards the prompt without the token) where A1111 multiplies
the token's embedding by w and rescales the chunk to its old mean; long prompts are split
at the last ``, . ; :`` of a chunk (A1111: the last comma within 20 tokens of the end);
prompt and negative of different lengths are padded with empty-prompt chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qeuopt.config.prompt_syntax import chunks, readable, schedule, split_loras, text_at


@dataclass
class Conditioning:
    """Pipeline keyword arguments, and a step callback when the prompt is edited mid-way."""

    kwargs: dict
    callback: Callable | None = None
    switches: list[int] | None = None  # sampler steps after which the prompt changes


class PromptEncoder:
    """One per pipeline: compel's embedding providers over its text encoder(s)."""

    def __init__(self, pipe, syntax: str = "a1111"):
        from compel import Compel, ReturnedEmbeddingsType
        from compel.embeddings_provider import SplitLongTextMode

        self.pipe, self.syntax = pipe, syntax
        self.sdxl = getattr(pipe, "text_encoder_2", None) is not None
        options = dict(truncate_long_prompts=False, split_long_text_mode=SplitLongTextMode.PHRASES)
        if self.sdxl:
            kind = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
            encoders = [(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]
            self.compels = [
                Compel(tokenizer=t, text_encoder=e, returned_embeddings_type=kind, requires_pooled=k == 1, **options)
                for k, (t, e) in enumerate(encoders)
            ]
        else:
            self.compels = [Compel(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, **options)]
        self._cache: dict[str, tuple] = {}

    # -- one text -> (embeds [1, 77n, d], pooled [1, d] or None) ---------------------------
    def encode(self, text: str):
        if text not in self._cache:
            import torch

            with torch.no_grad():
                self._cache[text] = self._encode(text)
        return self._cache[text]

    def _encode(self, text: str):
        import torch

        if self.syntax == "compel":
            outputs = [c.build_conditioning_tensor(text) for c in self.compels]
            pooled = outputs[-1][1] if self.sdxl else None
            embeds = [o[0] if isinstance(o, tuple) else o for o in outputs]
            return self._pad_cat(embeds), pooled
        parts = chunks(text)
        if len(parts) > 1 and not parts[-1]:
            parts = parts[:-1]  # a BREAK at the very end adds no chunk (A1111 neither)
        parts = [part or [("", 1.0)] for part in parts]  # an empty part is one chunk of padding
        per_encoder = []
        for compel in self.compels:
            provider = compel.conditioning_provider
            pieces = [
                provider.get_embeddings_for_weighted_prompt_fragments(
                    text_batch=[[f for f, _ in part]],
                    fragment_weights_batch=[[w for _, w in part]],
                    device=compel.device,
                )
                for part in parts
            ]
            per_encoder.append(torch.cat(pieces, dim=1))
        pooled = None
        if self.sdxl:  # pooled from the words, weights aside, first 77 tokens (as A1111's first chunk)
            provider = self.compels[1].conditioning_provider
            pooled = provider.get_pooled_embeddings([readable(text)], device=self.compels[1].device)
        return self._pad_cat(per_encoder), pooled

    @staticmethod
    def _pad_cat(per_encoder):
        import torch

        return per_encoder[0] if len(per_encoder) == 1 else torch.cat(per_encoder, dim=-1)

    def clear(self) -> None:
        """Forget cached embeddings (the text encoder changed: other LoRA weights)."""
        self._cache.clear()

    def empty_chunk(self):
        return self.encode("")[0]

    def pad(self, tensors):
        """Pad to a common length with empty-prompt chunks (compel's way)."""
        import torch

        longest = max(t.shape[1] for t in tensors)
        empty = self.empty_chunk()
        out = []
        for tensor in tensors:
            missing = (longest - tensor.shape[1]) // empty.shape[1]
            out.append(torch.cat([tensor] + [empty] * missing, dim=1) if missing else tensor)
        return out

    # -- a whole call -------------------------------------------------------------------
    def conditioning(self, prompt: str, negative: str, steps: int, images: int) -> Conditioning:
        """Keyword arguments for the pipeline; edited prompts switch through a step callback."""
        if self.syntax == "plain":
            return Conditioning({"prompt": prompt, "negative_prompt": negative or None})
        if self.syntax == "a1111":
            prompt = split_loras(prompt)[0]
            positive, negative_schedule = schedule(prompt, steps), schedule(negative or "", steps)
        else:
            positive, negative_schedule = [(steps, prompt)], [(steps, negative or "")]
        ends = sorted({end for end, _ in positive} | {end for end, _ in negative_schedule})
        texts = [(text_at(positive, end), text_at(negative_schedule, end)) for end in ends]
        encoded = [(self.encode(p), self.encode(n)) for p, n in texts]
        padded = self.pad([e for pair in encoded for e, _ in pair])
        pairs = [(padded[2 * k], padded[2 * k + 1], encoded[k][0][1], encoded[k][1][1]) for k in range(len(ends))]
        kwargs = self._kwargs(*pairs[0])
        if len(pairs) == 1:
            return Conditioning(kwargs)
        return Conditioning(kwargs, self._switcher(ends, pairs, images), ends[:-1])

    def _kwargs(self, embeds, negative, pooled, negative_pooled) -> dict:
        kwargs = {"prompt_embeds": embeds, "negative_prompt_embeds": negative}
        if self.sdxl:
            kwargs.update(pooled_prompt_embeds=pooled, negative_pooled_prompt_embeds=negative_pooled)
        return kwargs

    def _switcher(self, ends: list[int], pairs: list[tuple], images: int):
        """A ``callback_on_step_end`` that sets the embeddings the next step uses: sampler
        step ``i`` (0-based) takes the first schedule entry whose end step is >= ``i``."""
        import torch

        def batch(positive, negative, guided: bool):
            positive = positive.repeat(images, *[1] * (positive.dim() - 1))
            if not guided:
                return positive
            return torch.cat([negative.repeat(images, *[1] * (negative.dim() - 1)), positive])

        def on_step_end(pipe, step: int, timestep, tensors: dict) -> dict:
            following = step + 1
            k = next((k for k, end in enumerate(ends) if following <= end), len(ends) - 1)
            previous = next((j for j, end in enumerate(ends) if step <= end), len(ends) - 1)
            if k == previous:
                return tensors
            embeds, negative, pooled, negative_pooled = pairs[k]
            guided = pipe.do_classifier_free_guidance
            device = tensors["prompt_embeds"].device
            tensors["prompt_embeds"] = batch(embeds, negative, guided).to(device)
            if self.sdxl:
                tensors["add_text_embeds"] = batch(pooled, negative_pooled, guided).to(device)
            return tensors

        on_step_end.tensor_inputs = ["prompt_embeds", "add_text_embeds"] if self.sdxl else ["prompt_embeds"]
        return on_step_end
