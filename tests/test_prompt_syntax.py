"""A1111's prompt language: parsed by A1111's rules, embedded by compel on the tiny model."""

import pytest
import torch

from qeuopt.config.prompt_syntax import chunks, parse_attention, readable, schedule, split_loras, text_at
from qeuopt.errors import PromptSyntaxError
from qeuopt.testing.tiny import TINY_SD
from qeuopt.testing.tokenizer import PROMPT_TEMPLATE

DEMO = PROMPT_TEMPLATE.format(style_a="Hokusai", style_b="Claude Monet")


def test_attention_follows_a1111_rules():
    assert parse_attention(r"a (b) ((c)) [d] (e:1.3) \(f\) g") == [
        ("a ", 1.0),
        ("b", 1.1),
        (" ", 1.0),
        ("c", pytest.approx(1.21)),
        (" ", 1.0),
        ("d", pytest.approx(1 / 1.1)),
        (" ", 1.0),
        ("e", 1.3),
        (" (f) g", 1.0),
    ]
    assert parse_attention("(unclosed") == [("unclosed", pytest.approx(1.1))]
    assert parse_attention("a BREAK b") == [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]
    weights = dict(parse_attention(DEMO))
    assert weights["1girl"] == pytest.approx(1.43)  # (1girl:1.3) inside ( ... ): 1.3 * 1.1
    assert weights["beach, in the style of Claude Monet"] == pytest.approx(1.1)
    assert chunks("a BREAK (b:1.2)") == [[("a", 1.0)], [("b", 1.2)]]


def test_prompt_editing_schedules_as_a1111():
    entries = schedule("a [cat:dog:0.5] on [beach::4]", 20)
    assert entries == [(4, "a cat on beach"), (10, "a cat on "), (20, "a dog on ")]
    assert [text_at(entries, i) for i in (0, 4, 5, 10, 11, 19)] == [
        "a cat on beach",
        "a cat on beach",
        "a cat on ",
        "a cat on ",
        "a dog on ",
        "a dog on ",
    ]
    assert schedule("[(red:1.2):3] car", 10) == [(3, " car"), (10, "(red:1.2) car")]
    assert schedule("(x:1.2) [y] plain", 5) == [(5, "(x:1.2) [y] plain")]  # weights are not edits
    with pytest.raises(PromptSyntaxError, match="alternation"):
        schedule("[cat|dog]", 10)


def test_lora_tags_and_the_readable_text():
    text, weights = split_loras("a <lora:ink:0.6>, b <lora:paper> <lora:ink:0.2>")
    assert weights == {"ink": pytest.approx(0.8), "paper": 1.0} and "<" not in text
    assert readable(DEMO) == (
        "1girl, blue eye, in the style of Hokusai, standing, looking at viewer, "
        "beach, in the style of Claude Monet, high quality"
    )
    assert readable("a [cat:dog:0.5] <lora:ink:0.5>, on [(red:1.2):10] BREAK sea") == "a dog, on red sea"
    assert readable("(x:1.3)", "compel") == "(x:1.3)"  # other syntaxes are scored as written


# ---------------------------------------------------------------------- on the tiny model
@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionPipeline

    from qeuopt.testing.tiny import resolve_model

    pipe = StableDiffusionPipeline.from_pretrained(resolve_model(TINY_SD))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def encoder(pipe):
    from qeuopt.generate.conditioning import PromptEncoder

    return PromptEncoder(pipe, "a1111")


def tokens(pipe, text):
    return pipe.tokenizer(text, truncation=False).input_ids


def test_demo_weights_scale_each_token_as_written(pipe, encoder):
    weighted = encoder.encode(DEMO)[0]
    plain = encoder.encode(readable(DEMO))[0]
    empty = encoder.empty_chunk()
    ids = tokens(pipe, readable(DEMO))
    vocab = pipe.tokenizer.get_vocab()
    assert weighted.shape == plain.shape == (1, 77, 32)
    ratio = ((weighted - empty) / (plain - empty))[0]  # compel: z_w = empty + w * (z - empty), w >= 1

    def weight_of(word):
        position = ids.index(vocab[word + "</w>"])
        return ratio[position].median().item()

    assert weight_of("girl") == pytest.approx(1.43, rel=1e-3)  # "1girl" is two tokens: 1, girl
    assert weight_of("hokusai") == pytest.approx(1.1, rel=1e-3)
    assert weight_of("monet") == pytest.approx(1.1, rel=1e-3)
    assert torch.equal(weighted[0, ids.index(vocab["high</w>"])], plain[0, ids.index(vocab["high</w>"])])


def test_a_prompt_without_syntax_embeds_exactly_as_diffusers_does(pipe, encoder):
    text = "portrait in the style of Hokusai, beach, high quality"
    assert torch.equal(encoder.encode(text)[0], pipe.encode_prompt(text, "cpu", 1, False)[0])


def test_downweight_moves_towards_the_prompt_without_the_word(encoder):
    base, down = encoder.encode("red car")[0], encoder.encode("[red] car")[0]
    assert not torch.allclose(base, down) and base.shape == down.shape


def test_long_prompt_is_chunked_not_truncated(pipe, encoder):
    words = [
        "red",
        "blue",
        "green",
        "yellow",
        "black",
        "white",
        "sun",
        "sea",
        "sky",
        "beach",
        "ocean",
        "mountain",
        "city",
        "forest",
        "night",
        "day",
        "light",
        "eye",
        "hair",
        "face",
        "smile",
        "girl",
        "boy",
        "man",
        "woman",
        "person",
        "figure",
        "art",
        "style",
        "painting",
    ]
    prompt = ", ".join((words * 3)[:60]) + ","  # 60 words and 60 commas: 120 tokens
    assert len(tokens(pipe, prompt)) - 2 == 120
    embeds = encoder.encode(prompt)[0]
    assert embeds.shape == (1, 154, 32)  # two chunks of 77: nothing cut
    # A1111: a full chunk ends after its last comma (token 74 here); the rest starts a new chunk,
    # encoded alone with its own start and end tokens
    rest = ", ".join((words * 3)[37:60]) + ","
    torch.testing.assert_close(embeds[:, 77:], encoder.encode(rest)[0])
    first = ", ".join((words * 3)[:37]) + ","
    torch.testing.assert_close(embeds[:, :77], encoder.encode(first)[0])
    plain = pipe.encode_prompt(prompt, "cpu", 1, False)[0]
    assert plain.shape == (1, 77, 32)  # what diffusers does alone


def test_break_starts_a_new_chunk(encoder):
    embeds = encoder.encode("red car BREAK blue sea")[0]
    assert embeds.shape == (1, 154, 32)
    torch.testing.assert_close(embeds[:, 77:], encoder.encode("blue sea")[0])
    torch.testing.assert_close(embeds[:, :77], encoder.encode("red car")[0])


def test_prompt_and_negative_are_padded_to_one_length(encoder):
    long = ", ".join(["red sea"] * 40)  # 119 tokens
    kwargs = encoder.conditioning(long, "low quality", steps=4, images=2).kwargs
    assert kwargs["prompt_embeds"].shape == kwargs["negative_prompt_embeds"].shape == (1, 154, 32)
    torch.testing.assert_close(kwargs["negative_prompt_embeds"][:, 77:], encoder.empty_chunk())


def test_compel_and_plain_syntaxes(pipe):
    from qeuopt.generate.conditioning import PromptEncoder

    compel = PromptEncoder(pipe, "compel")
    assert not torch.allclose(compel.encode("a (ball)1.5")[0], compel.encode("a ball")[0])
    plain = PromptEncoder(pipe, "plain").conditioning("(ball:1.5)", "", 4, 1).kwargs
    assert plain == {"prompt": "(ball:1.5)", "negative_prompt": None}


def test_prompt_editing_switches_the_conditioning_after_the_given_step(pipe, encoder):
    from diffusers import DDIMScheduler

    seen, own = [], pipe.scheduler
    pipe.scheduler = DDIMScheduler.from_config(own.config)  # one UNet call per step
    hook = pipe.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["encoder_hidden_states"].clone()), with_kwargs=True
    )
    try:
        conditioning = encoder.conditioning("a [cat:dog:2] on the beach", "", steps=5, images=1)
        assert conditioning.switches == [2]
        pipe(
            **conditioning.kwargs,
            num_inference_steps=5,
            width=64,
            height=64,
            guidance_scale=7.5,
            generator=torch.Generator("cpu").manual_seed(0),
            callback_on_step_end=conditioning.callback,
            callback_on_step_end_tensor_inputs=conditioning.callback.tensor_inputs,
        )
    finally:
        hook.remove()
        pipe.scheduler = own
    cat, dog = encoder.encode("a cat on the beach")[0], encoder.encode("a dog on the beach")[0]
    assert len(seen) == 5
    positive = [batch[1:] for batch in seen]  # [negative, positive] under guidance
    assert [torch.equal(p, cat) for p in positive] == [True, True, True, False, False]
    assert all(torch.equal(p, dog) for p in positive[3:])  # steps 0..2 cat (A1111: step <= 2), then dog


def tiny_sdxl(tokenizer):
    """An SDXL pipeline from tiny parts: two text encoders (one with projection, pooled)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from qeuopt.testing.tiny import SD15_SCHEDULER

    torch.manual_seed(0)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=32,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=64,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(config),
        text_encoder_2=CLIPTextModelWithProjection(config),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(SD15_SCHEDULER),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("syntax", ["a1111", "compel"])
def test_sdxl_path_weights_chunks_pools_and_switches(pipe, syntax):
    from qeuopt.generate.conditioning import PromptEncoder

    sdxl = tiny_sdxl(pipe.tokenizer)
    encoder = PromptEncoder(sdxl, syntax)
    long = ", ".join(["red sea"] * 40)  # 119 tokens: two chunks
    prompt = "(girl:1.3), [cat:dog:2] " + long if syntax == "a1111" else "(girl)1.3, cat " + long
    conditioning = encoder.conditioning(prompt, "low quality", steps=4, images=2)
    kwargs = conditioning.kwargs
    assert kwargs["prompt_embeds"].shape == kwargs["negative_prompt_embeds"].shape == (1, 154, 64)  # 32 + 32
    assert kwargs["pooled_prompt_embeds"].shape == (1, 32)
    assert conditioning.switches == ([2] if syntax == "a1111" else None)
    if conditioning.callback:
        kwargs = {
            **kwargs,
            "callback_on_step_end": conditioning.callback,
            "callback_on_step_end_tensor_inputs": conditioning.callback.tensor_inputs,
        }
    images = sdxl(
        **kwargs,
        num_images_per_prompt=2,
        num_inference_steps=4,
        width=64,
        height=64,
        generator=[torch.Generator("cpu").manual_seed(s) for s in (1, 2)],
    ).images
    assert len(images) == 2 and images[0].size == (64, 64)
