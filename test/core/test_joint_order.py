"""The joint orders and the permutations between them."""

from __future__ import annotations

import numpy as np
import torch

from hand_scene_perception.core.hand_model import joint_order as jo

# Model-order rows: 16 MANO pose joints, then the five tips in TIP_FINGER_ORDER.
MODEL_ROW_NAMES = jo.MANO_JOINT_NAMES + tuple(f"{finger}_tip" for finger in jo.TIP_FINGER_ORDER)

# What each MANO joint is called in the product order (MANO's "<finger>1..3" are the finger's
# three articulated joints: MCP, PIP, DIP; for the thumb CMC, MCP, IP).
MANO_TO_PRODUCT_NAME = {
    "wrist": "wrist",
    **{f"thumb{k}": f"thumb_{j}" for k, j in zip((1, 2, 3), ("cmc", "mcp", "ip"), strict=True)},
    **{
        f"{finger}{k}": f"{finger}_{j}"
        for finger in ("index", "middle", "ring", "pinky")
        for k, j in zip((1, 2, 3), ("mcp", "pip", "dip"), strict=True)
    },
    **{f"{finger}_tip": f"{finger}_tip" for finger in jo.TIP_FINGER_ORDER},
}


def test_permutations_are_inverse():
    forward = np.array(jo.MODEL_TO_MEDIAPIPE)
    backward = np.array(jo.MEDIAPIPE_TO_MODEL)
    assert sorted(forward) == list(range(jo.NUM_JOINTS))
    assert np.array_equal(forward[backward], np.arange(jo.NUM_JOINTS))
    assert np.array_equal(backward[forward], np.arange(jo.NUM_JOINTS))


def test_every_product_row_gets_the_same_named_model_row():
    for product_row, model_row in enumerate(jo.MODEL_TO_MEDIAPIPE):
        assert MANO_TO_PRODUCT_NAME[MODEL_ROW_NAMES[model_row]] == jo.MEDIAPIPE_JOINT_NAMES[product_row]


def test_named_examples():
    assert jo.MEDIAPIPE_JOINT_NAMES[4] == "thumb_tip" and jo.MODEL_TO_MEDIAPIPE[4] == 16
    assert jo.MEDIAPIPE_JOINT_NAMES[5] == "index_mcp"
    assert jo.MODEL_TO_MEDIAPIPE[5] == jo.MANO_JOINT_NAMES.index("index1")
    assert jo.MODEL_TO_MEDIAPIPE[0] == 0
    assert [jo.MEDIAPIPE_JOINT_NAMES[i] for i in jo.MEDIAPIPE_TIPS] == [f"{f}_tip" for f in jo.TIP_FINGER_ORDER]


def test_reorder_round_trip_numpy_and_torch():
    model = np.arange(2 * 21 * 3, dtype=np.float32).reshape(2, 21, 3)
    product = jo.model_to_mediapipe(model)
    assert np.array_equal(product[:, 4], model[:, 16])
    assert np.array_equal(jo.mediapipe_to_model(product), model)
    tensor = torch.from_numpy(model)
    assert torch.equal(jo.mediapipe_to_model(jo.model_to_mediapipe(tensor)), tensor)


def test_mediapipe_parents_follow_the_names():
    names = jo.MEDIAPIPE_JOINT_NAMES
    assert jo.MEDIAPIPE_PARENTS[0] == -1
    for child, parent in enumerate(jo.MEDIAPIPE_PARENTS[1:], start=1):
        finger = names[child].split("_")[0]
        first_of_finger = names.index(next(n for n in names if n.startswith(finger + "_")))
        # A finger's first joint hangs off the wrist, every other joint off its predecessor on that finger.
        assert parent == (0 if child == first_of_finger else child - 1)
        assert parent == 0 or names[parent].split("_")[0] == finger


def test_mano_parents_follow_the_names():
    names = jo.MANO_JOINT_NAMES
    assert jo.MANO_PARENTS[0] == -1
    for child, parent in enumerate(jo.MANO_PARENTS[1:], start=1):
        if names[child].endswith("1"):
            assert parent == 0
        else:
            assert names[parent] == names[child][:-1] + str(int(names[child][-1]) - 1)
