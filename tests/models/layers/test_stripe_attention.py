"""Cross-shaped stripe attention with LePE on maps that need padding,
against a direct computation region by region."""
import pytest
import torch
import torch.nn.functional as F

from mmboat.models.layers import CrossShapedWindowAttention


def direct_stripe_attention(attn, x, hw_shape, stripes):
    """Attention + LePE computed region by region, without any padding.

    ``stripes``: per branch, the list of (row slice, col slice) regions.
    """
    B, N, C = x.shape
    H, W = hw_shape
    qkv = attn.qkv(x).view(B, H, W, 3, C)
    nb = attn.num_branches
    c, heads = C // nb, attn.num_heads // nb
    out = torch.zeros(B, H, W, C, dtype=x.dtype)
    for b, (regions, lepe) in enumerate(zip(stripes, attn.lepe)):
        for rows, cols in regions:
            q, k, v = qkv[:, rows, cols, :, b * c:(b + 1) * c].unbind(3)
            h, w = q.shape[1:3]

            def split(t):  # (B, h, w, c) -> (B, heads, h*w, d)
                return t.reshape(B, h * w, heads, -1).transpose(1, 2)

            a = torch.softmax(
                split(q) @ split(k).transpose(-1, -2) * attn.scale, dim=-1)
            o = (a @ split(v)).transpose(1, 2).reshape(B, h, w, c)
            o = o + F.conv2d(
                v.permute(0, 3, 1, 2),
                lepe.weight,
                lepe.bias,
                padding=1,
                groups=c).permute(0, 2, 3, 1)
            out[:, rows, cols, b * c:(b + 1) * c] = o
    return attn.proj(out.reshape(B, N, C))


def stripes_of(length, size):
    return [slice(s, min(s + size, length)) for s in range(0, length, size)]


@pytest.mark.parametrize('hw_shape, split', [((9, 10), 4), ((5, 13), 2),
                                             ((8, 8), 4), ((3, 3), 7)])
def test_stripe_attention_padding_matches_direct(hw_shape, split):
    torch.manual_seed(0)
    H, W = hw_shape
    attn = CrossShapedWindowAttention(16, 4, split).double().eval()
    for p in attn.parameters():  # non-trivial biases everywhere
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, H * W, 16, dtype=torch.float64)
    full = slice(None)
    regions = [[(full, cols) for cols in stripes_of(W, split)],
               [(rows, full) for rows in stripes_of(H, split)]]
    with torch.no_grad():
        out = attn(x, hw_shape)
        ref = direct_stripe_attention(attn, x, hw_shape, regions)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


def test_full_attention_on_any_map():
    torch.manual_seed(0)
    attn = CrossShapedWindowAttention(
        16, 4, 7, full_attention=True).double().eval()
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 5 * 11, 16, dtype=torch.float64)
    full = slice(None)
    with torch.no_grad():
        out = attn(x, (5, 11))
        ref = direct_stripe_attention(attn, x, (5, 11), [[(full, full)]])
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


def test_padding_does_not_leak():
    """Real tokens never see padding: a map that needs padding gives the
    same outputs as the same tokens cut into stripes that need none."""
    torch.manual_seed(0)
    attn = CrossShapedWindowAttention(8, 2, 4).double().eval()
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    H, W = 6, 10  # vertical stripes 4 + 4 + 2, horizontal 4 + 2
    qkv = attn.qkv(torch.randn(1, H * W, 8,
                               dtype=torch.float64)).view(1, H, W, 3,
                                                          8)[..., :4]
    with torch.no_grad():
        padded = attn.stripe_attention(qkv, attn.lepe[0], (H, 4))
        left = attn.stripe_attention(qkv[:, :, :8], attn.lepe[0], (H, 4))
        right = attn.stripe_attention(qkv[:, :, 8:], attn.lepe[0], (H, 2))
    torch.testing.assert_close(
        padded, torch.cat([left, right], 2), rtol=0, atol=1e-14)
