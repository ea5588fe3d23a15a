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
