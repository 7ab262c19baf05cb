import KinemaNN

// CLIP vision tower checkpoint layouts. The canonical names are Wan's (wan/modules/clip.py VisionTransformer,
// the `visual.` part of `models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth`, prefix stripped);
// transformers' CLIPVisionModel names map onto them.
//
// Two differences cannot be expressed as renames, so the canonical namespace keeps both spellings and
// CLIPVisionEncoder loads whichever the file has:
// - attention input projection: Wan fuses it (`attn.to_qkv` [3W, W], rows q | k | v); transformers keeps
//   `q_proj`, `k_proj`, `v_proj` [W, W] (canonical `attn.q_proj` …), which the encoder concatenates.
// - class / position embeddings: Wan's `cls_embedding` [1, 1, W] and `pos_embedding` [1, L, W];
//   transformers' `class_embedding` [W] and `position_embedding.weight` [L, W].

public enum CLIPKeyLayouts {
    /// transformers CLIPVisionModel (diffusers `image_encoder/`) → canonical. Files written by transformers
    /// 4.x carry a `vision_model.` prefix (the published Wan2.1 I2V diffusers folders do); transformers 5
    /// writes the same names without it. Both are accepted. (A rule, not a wrapper prefix:
    /// CLIPVisionModelWithProjection files have `visual_projection.weight` beside `vision_model.*`.)
    public static let transformers = KeyLayout(
        name: "transformers",
        markers: ["pre_layrnorm.", "encoder.layers."],
        rules: [
            .prefix("vision_model.", ""),
            .exact("embeddings.class_embedding", "class_embedding"),
            .exact("embeddings.patch_embedding.weight", "patch_embedding.weight"),
            .exact("embeddings.position_embedding.weight", "position_embedding.weight"),
            .prefix("pre_layrnorm.", "pre_norm."),
            .prefix("post_layernorm.", "post_norm."),
            .prefix("encoder.layers.", "transformer."),
            .infix(".layer_norm1.", ".norm1."),
            .infix(".layer_norm2.", ".norm2."),
            .infix(".self_attn.q_proj.", ".attn.q_proj."),
            .infix(".self_attn.k_proj.", ".attn.k_proj."),
            .infix(".self_attn.v_proj.", ".attn.v_proj."),
            .infix(".self_attn.out_proj.", ".attn.proj."),
            // Wan's mlp is Sequential(Linear, GELU, Linear, Dropout): indices 0 and 2.
            .infix(".mlp.fc1.", ".mlp.0."),
            .infix(".mlp.fc2.", ".mlp.2."),
        ])

    /// Wan's whole XLM-RoBERTa CLIP state dict: the vision tower under `visual.`, beside the text tower
    /// (`textual.`) and the logit scale, which are ignored on purpose (`ignored`). Not a wrapper prefix:
    /// not every key has it.
    public static let wan = KeyLayout(name: "wan", markers: ["visual.transformer."], rules: [.prefix("visual.", "")])

    /// Canonical names as they are (a vision tower saved on its own with Wan's names).
    public static let canonical = KeyLayout(name: "canonical", markers: [], rules: [])

    public static let all = [transformers, wan, canonical]

    public static let wrapperPrefixes = ["image_encoder."]

    /// Canonical keys a file may carry that the vision encoder does not use. Everything of the vision
    /// tower itself, even the parts it skips (last block, post norm, head), is accounted for by the encoder.
    public static let ignored: [KeyPattern] = [
        // Wan's .pth: the XLM-RoBERTa text tower and CLIP's learned temperature.
        .prefix("textual."), .exact("log_scale"),
        // transformers CLIPVisionModelWithProjection exports: the projection to the joint embedding space.
        .exact("visual_projection.weight"),
    ]
}
