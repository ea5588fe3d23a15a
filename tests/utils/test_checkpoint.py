"""load_checkpoint_file: plain data comes back, foreign classes become inert
OpaqueObjects and nothing from the file runs."""
import os

import numpy as np
import pytest
import torch

from mmboat.utils import CheckpointError, OpaqueObject, load_checkpoint_file


class Payload:
    marker = None

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_plain_data_round_trips(tmp_path):
    data = {'w': torch.arange(4.), 'arr': np.arange(3.), 'scalar': np.float64(2.5),
            'dtype': np.dtype('f4'), 'bytes': b'abc', 'set': {1, 2}}
    torch.save(data, tmp_path / 'ok.pth')
    out = load_checkpoint_file(str(tmp_path / 'ok.pth'))
    assert torch.equal(out['w'], data['w'])
    np.testing.assert_array_equal(out['arr'], data['arr'])
    assert out['scalar'] == 2.5 and out['dtype'] == np.float32
    assert out['bytes'] == b'abc' and out['set'] == {1, 2}


def test_foreign_objects_are_inert(tmp_path):
    Payload.marker = str(tmp_path / 'ran')
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'x': Payload()},
               tmp_path / 'evil.pth')
    out = load_checkpoint_file(str(tmp_path / 'evil.pth'))
    assert isinstance(out['x'], OpaqueObject)
    assert 'system' in repr(out['x'])
    assert not (tmp_path / 'ran').exists()


def test_truncated_and_missing_files(tmp_path):
    torch.save({'w': torch.zeros(1000)}, tmp_path / 'full.pth')
    data = (tmp_path / 'full.pth').read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_checkpoint_file(str(tmp_path / 'cut.pth'))
    with pytest.raises(CheckpointError, match='not found'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))
