import torch

from mmboat.models.layers import PaddedShiftWindowMSA


def test_shift_window_rule():
    """Shift only when the padded map has more than one window."""
    torch.manual_seed(0)
    shifted = PaddedShiftWindowMSA(16, 2, 7, shift_size=3).double().eval()
    plain = PaddedShiftWindowMSA(16, 2, 7, shift_size=0).double().eval()
    torch.nn.init.normal_(shifted.w_msa.relative_position_bias_table)
    plain.load_state_dict(shifted.state_dict())
    assert 'w_msa.relative_position_index' not in plain.state_dict()
    for hw, same in [((7, 7), True), ((5, 3), True), ((7, 9), False),
                     ((14, 14), False)]:
        x = torch.randn(2, hw[0] * hw[1], 16, dtype=torch.float64)
        out = shifted(x, hw)
        assert out.shape == x.shape
        assert torch.equal(out, plain(x, hw)) == same, hw


def test_same_computation_as_mmpretrain_window_msa():
    """WindowMSA, its relative position index and the shift mask are
    mmpretrain's (official Swin's), bit for bit in float64, with the same
    parameter names."""
    from mmpretrain.models.utils.attention import ShiftWindowMSA
    from mmpretrain.models.utils.attention import WindowMSA as Reference

    from mmboat.models.layers.window_attention import (WindowMSA,
                                                       shift_attention_mask)
    torch.manual_seed(0)
    ref = Reference(24, (7, 7), 3).double().eval()
    torch.nn.init.normal_(ref.relative_position_bias_table)
    ours = WindowMSA(24, 7, 3).double().eval()
    missing, unexpected = ours.load_state_dict(ref.state_dict(), strict=False)
    assert missing == [] and unexpected == ['relative_position_index']
    assert torch.equal(ours.relative_position_index,
                       ref.relative_position_index)
    for hw, shift in [((14, 14), 3), ((21, 14), 3), ((14, 28), 0)]:
        mask = shift_attention_mask(hw, 7, shift)
        expected = ShiftWindowMSA.get_attn_mask(hw, 7, shift)
        assert (mask is None and expected is None) or torch.equal(
            mask, expected)
        windows = hw[0] * hw[1] // 49
        x = torch.randn(2 * windows, 49, 24, dtype=torch.float64)
        m = None if mask is None else mask.double()
        assert torch.equal(ours(x, m), ref(x, m))
