import KinemaNN

// umT5 encoder checkpoint layouts. The canonical names are Wan's original ones (wan/modules/t5.py
// T5Encoder, as in `models_t5_umt5-xxl-enc-bf16.pth`); transformers' UMT5EncoderModel names map onto them.

public enum UMT5KeyLayouts {
    /// transformers UMT5EncoderModel / UMT5Model → Wan.
    public static let transformers = KeyLayout(
        name: "transformers",
        markers: ["encoder.block.", "encoder.final_layer_norm."],
        rules: [
            .exact("shared.weight", "token_embedding.weight"),
            // Tied to `shared`; files may carry either or both (see UMT5Encoder's embedding lookup).
            .exact("encoder.embed_tokens.weight", "token_embedding_tied.weight"),
            .exact("encoder.final_layer_norm.weight", "norm.weight"),
            .prefix("encoder.block.", "blocks."),
            // Before the generic SelfAttention rule: the bias lives under SelfAttention too.
            .infix(".layer.0.SelfAttention.relative_attention_bias.", ".pos_embedding.embedding."),
            .infix(".layer.0.SelfAttention.", ".attn."),
            .infix(".layer.0.layer_norm.", ".norm1."),
            // Wan's T5FeedForward computes fc2(fc1(x) · gate(x)) with gate = Sequential(Linear, GELU):
            // the GELU'd projection is transformers' wi_0.
            .infix(".layer.1.DenseReluDense.wi_0.", ".ffn.gate.0."),
            .infix(".layer.1.DenseReluDense.wi_1.", ".ffn.fc1."),
            .infix(".layer.1.DenseReluDense.wo.", ".ffn.fc2."),
            .infix(".layer.1.layer_norm.", ".norm2."),
        ])

    /// Original Wan names (canonical: no renaming).
    public static let wan = KeyLayout(name: "wan", markers: [], rules: [])

    public static let all = [transformers, wan]

    /// Prefixes seen when the encoder is stored inside a larger file (diffusers pipelines, merged files).
    public static let wrapperPrefixes = ["text_encoder."]

    /// Canonical keys a file may carry that the encoder does not use: the tied duplicate of the token
    /// embedding, and the decoder / LM head of a full (encoder-decoder) UMT5 checkpoint.
    public static let ignored: [KeyPattern] = [
        .exact("token_embedding_tied.weight"), .prefix("decoder."), .exact("lm_head.weight"),
    ]
}
