import KinemaNN

// Wan DiT checkpoint layouts. The canonical names are the original Wan / LightX2V ones
// (`blocks.N.self_attn.q`, `head.head`, …); diffusers names are mapped onto them.

public enum WanKeyLayouts {
    /// diffusers WanTransformer3DModel → original Wan.
    public static let diffusers = KeyLayout(
        name: "diffusers",
        markers: ["condition_embedder.", ".attn1.", "proj_out."],
        rules: [
            .prefix("condition_embedder.time_embedder.linear_1.", "time_embedding.0."),
            .prefix("condition_embedder.time_embedder.linear_2.", "time_embedding.2."),
            .prefix("condition_embedder.time_proj.", "time_projection.1."),
            .prefix("condition_embedder.text_embedder.linear_1.", "text_embedding.0."),
            .prefix("condition_embedder.text_embedder.linear_2.", "text_embedding.2."),
            .prefix("condition_embedder.image_embedder.norm1.", "img_emb.proj.0."),
            .prefix("condition_embedder.image_embedder.ff.net.0.proj.", "img_emb.proj.1."),
            .prefix("condition_embedder.image_embedder.ff.net.2.", "img_emb.proj.3."),
            .prefix("condition_embedder.image_embedder.norm2.", "img_emb.proj.4."),
            .exact("condition_embedder.image_embedder.pos_embed", "img_emb.emb_pos"),
            .infix(".attn1.to_q.", ".self_attn.q."),
            .infix(".attn1.to_k.", ".self_attn.k."),
            .infix(".attn1.to_v.", ".self_attn.v."),
            .infix(".attn1.to_out.0.", ".self_attn.o."),
            .infix(".attn1.norm_q.", ".self_attn.norm_q."),
            .infix(".attn1.norm_k.", ".self_attn.norm_k."),
            .infix(".attn2.to_q.", ".cross_attn.q."),
            .infix(".attn2.to_k.", ".cross_attn.k."),
            .infix(".attn2.to_v.", ".cross_attn.v."),
            .infix(".attn2.to_out.0.", ".cross_attn.o."),
            .infix(".attn2.norm_q.", ".cross_attn.norm_q."),
            .infix(".attn2.norm_k.", ".cross_attn.norm_k."),
            .infix(".attn2.add_k_proj.", ".cross_attn.k_img."),
            .infix(".attn2.add_v_proj.", ".cross_attn.v_img."),
            .infix(".attn2.norm_added_k.", ".cross_attn.norm_k_img."),
            // diffusers' block norm2 is the affine pre-cross-attention norm Wan calls norm3 (its norm1/norm3
            // have no parameters, so no other key can collide).
            .infix(".norm2.", ".norm3."),
            .infix(".ffn.net.0.proj.", ".ffn.0."),
            .infix(".ffn.net.2.", ".ffn.2."),
            .infix(".scale_shift_table", ".modulation"),
            .exact("scale_shift_table", "head.modulation"),
            .prefix("proj_out.", "head.head."),
        ])

    /// Original Wan2.1 / LightX2V names (canonical: no renaming).
    public static let wan = KeyLayout(name: "wan", markers: [], rules: [])

    public static let all = [diffusers, wan]

    /// Wrapper prefixes seen on single-file checkpoints (ComfyUI, LightX2V LoRA-merged files, pipelines).
    public static let wrapperPrefixes = ["model.diffusion_model.", "diffusion_model.", "transformer.", "model."]
}
