import KinemaNN

// Wan2.1 VAE checkpoint layouts. The canonical names are the original `Wan2.1_VAE.pth` ones (module tree of
// Wan's `WanVAE_`); diffusers AutoencoderKLWan names are mapped onto them. The mapping is the inverse of
// diffusers' `convert_wan_vae_to_diffusers` (single_file_utils.py), which the golden script checks
// (scripts/goldens/vae_goldens.py: bijective, and converting back gives the diffusers state dict).
//
//   diffusers                                        original Wan
//   quant_conv / post_quant_conv                     conv1 / conv2
//   {encoder,decoder}.conv_in                        {encoder,decoder}.conv1
//   {encoder,decoder}.norm_out.gamma                 {encoder,decoder}.head.0.gamma
//   {encoder,decoder}.conv_out                       {encoder,decoder}.head.2
//   *.mid_block.resnets.0 / attentions.0 / resnets.1 *.middle.0 / middle.1 / middle.2
//   encoder.down_blocks.N                            encoder.downsamples.N          (both flat lists)
//   decoder.up_blocks.i.resnets.j                    decoder.upsamples.(i·(R+2) + j)
//   decoder.up_blocks.i.upsamplers.0                 decoder.upsamples.(i·(R+2) + R + 1)
//   resnet norm1.gamma / conv1 / norm2.gamma / conv2 residual.0.gamma / residual.2 / residual.3.gamma / residual.6
//   resnet conv_shortcut                             shortcut
// where R = num_res_blocks (the decoder has R + 1 residual blocks per stage, then one resample except in
// the last stage). Inside the resample and attention blocks the names agree (`resample.1`, `time_conv`,
// `norm.gamma`, `to_qkv`, `proj`).

public enum WanVAEKeyLayouts {
    /// The diffusers layout for a decoder of `stages` stages with `numResBlocks` (R) residual blocks per
    /// encoder stage. The decoder's flat indices depend on both, so the rule list is built per structure.
    public static func diffusers(stages: Int, numResBlocks: Int) -> KeyLayout {
        // Residual-block internals first: on diffusers names `.conv1.` / `.conv2.` occur only inside resnets
        // (the top-level convs are conv_in / quant_conv), and no later rule produces them.
        var rules: [KeyRule] = [
            .infix(".norm1.gamma", ".residual.0.gamma"),
            .infix(".conv1.", ".residual.2."),
            .infix(".norm2.gamma", ".residual.3.gamma"),
            .infix(".conv2.", ".residual.6."),
            .infix(".conv_shortcut.", ".shortcut."),
            .infix(".mid_block.resnets.0.", ".middle.0."),
            .infix(".mid_block.attentions.0.", ".middle.1."),
            .infix(".mid_block.resnets.1.", ".middle.2."),
            .prefix("encoder.down_blocks.", "encoder.downsamples."),
            .prefix("quant_conv.", "conv1."),
            .prefix("post_quant_conv.", "conv2."),
        ]
        for part in ["encoder", "decoder"] {
            rules += [
                .prefix("\(part).conv_in.", "\(part).conv1."),
                .prefix("\(part).norm_out.", "\(part).head.0."),
                .prefix("\(part).conv_out.", "\(part).head.2."),
            ]
        }
        let perStage = numResBlocks + 2
        for stage in 0..<max(stages, 0) {
            for block in 0...numResBlocks {
                rules.append(.prefix("decoder.up_blocks.\(stage).resnets.\(block).", "decoder.upsamples.\(stage * perStage + block)."))
            }
            rules.append(.prefix("decoder.up_blocks.\(stage).upsamplers.0.", "decoder.upsamples.\(stage * perStage + numResBlocks + 1)."))
        }
        return KeyLayout(name: "diffusers", markers: diffusersMarkers, rules: rules)
    }

    static let diffusersMarkers = ["decoder.up_blocks.", "encoder.down_blocks.", ".mid_block.", "post_quant_conv."]

    /// Original Wan2.1 names (canonical: no renaming).
    public static let wan = KeyLayout(name: "wan", markers: [], rules: [])

    /// Prefixes single-file exports put in front of the VAE's own keys.
    public static let wrapperPrefixes = ["vae.", "first_stage_model."]

    /// Decoder structure read from diffusers key names (stage count, residual blocks per encoder stage), so
    /// the layout can be built before any config is known. Nil when the keys are not diffusers ones.
    public static func diffusersStructure(_ keys: [String]) -> (stages: Int, numResBlocks: Int)? {
        var stages = 0
        var resnets = 0
        for key in keys where key.hasPrefix("decoder.up_blocks.") {
            let parts = key.split(separator: ".")
            guard parts.count > 4, let stage = Int(parts[2]) else { continue }
            stages = max(stages, stage + 1)
            if stage == 0, parts[3] == "resnets", let block = Int(parts[4]) { resnets = max(resnets, block + 1) }
        }
        guard stages > 0, resnets > 1 else { return nil }
        return (stages, resnets - 1)
    }

    /// Candidate layouts for these (wrapper-stripped) source keys: diffusers first when its markers appear.
    public static func layouts(for keys: [String]) -> [KeyLayout] {
        guard let structure = diffusersStructure(keys) else { return [wan] }
        return [diffusers(stages: structure.stages, numResBlocks: structure.numResBlocks), wan]
    }
}
