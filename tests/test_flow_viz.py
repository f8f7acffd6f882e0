"""Colour-wheel flow pictures: white at rest, hue by direction, saturation by normalised length."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from edgeflownas.flow_viz import (
    color_wheel, endpoint_error, error_to_rgb, flow_magnitude_max, flow_to_rgb, wheel_legend,
)


def one_pixel(u: float, v: float, max_flow=None) -> np.ndarray:
    return flow_to_rgb(np.array([[[u, v]]], np.float32), max_flow=max_flow)[0, 0]


def hue_degrees(rgb: np.ndarray) -> float:
    return 360.0 * colorsys.rgb_to_hsv(*(rgb / 255.0))[0]


def test_wheel_has_55_colours_starting_red_and_each_fully_saturated():
    wheel = color_wheel()
    assert wheel.shape == (55, 3)
    assert tuple(wheel[0]) == (255, 0, 0)
    assert (wheel.min(axis=1) == 0).all() and (wheel.max(axis=1) == 255).all()


def test_zero_flow_is_white():
    picture = flow_to_rgb(np.zeros((4, 5, 2), np.float32))
    assert picture.dtype == np.uint8 and picture.shape == (4, 5, 3)
    assert (picture == 255).all()


@pytest.mark.parametrize("u, v, low, high, name", [
    (1, 0, -12, 12, "right is red"),
    (0, 1, 40, 65, "down (image y) is orange-yellow"),
    (-1, 0, 175, 200, "left is cyan"),
    (0, -1, 240, 275, "up is blue-violet"),
])
def test_directions_map_to_their_hues(u, v, low, high, name):
    hue = hue_degrees(one_pixel(u, v, max_flow=1.0))
    hue = hue - 360 if hue > 300 else hue
    assert low <= hue <= high, f"{name}: hue {hue:.1f}"


def test_hue_turns_monotonically_with_direction():
    angles = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    flow = np.stack([np.cos(angles), np.sin(angles)], axis=-1)[None]  # clockwise on screen: right, down, left, up
    hues = np.unwrap(np.radians([hue_degrees(c) for c in flow_to_rgb(flow, max_flow=1.0)[0]]))
    steps = np.diff(np.degrees(hues))
    assert (steps > 0).all() and np.degrees(hues[-1] - hues[0]) > 340


def test_longest_vector_is_saturated_and_shorter_ones_paler():
    flow = np.array([[[4.0, 0.0], [2.0, 0.0], [0.0, 0.0]]])
    picture = flow_to_rgb(flow)
    assert flow_magnitude_max(flow) == 4.0
    assert picture[0, 0].min() == 0
    assert 120 <= picture[0, 1].min() <= 135  # half length: halfway to white
    assert (picture[0, 2] == 255).all()


def test_auto_normalisation_is_scale_invariant():
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(6, 7, 2)) * 3
    assert np.array_equal(flow_to_rgb(flow), flow_to_rgb(10 * flow))


def test_explicit_max_flow_shares_one_scale_and_darkens_overflow():
    within = one_pixel(1.0, 0.0, max_flow=2.0)
    assert within.min() > 100
    beyond = one_pixel(4.0, 0.0, max_flow=2.0)
    assert beyond.max() <= int(0.75 * 255) + 1 and beyond.min() == 0


def test_unknown_flow_is_black_and_does_not_set_the_scale():
    flow = np.array([[[np.nan, 0.0], [1e10, 0.0], [2.0, 0.0]]])
    picture = flow_to_rgb(flow)
    assert (picture[0, 0] == 0).all() and (picture[0, 1] == 0).all()
    assert picture[0, 2].min() == 0 and picture[0, 2].max() == 255


def test_batches_keep_their_leading_axes():
    assert flow_to_rgb(np.ones((2, 3, 4, 2))).shape == (2, 3, 4, 3)
    with pytest.raises(ValueError, match="2 channels"):
        flow_to_rgb(np.ones((3, 4, 3)))


def test_legend_is_white_in_the_centre_and_red_on_the_right():
    legend = wheel_legend(51)
    assert (legend[25, 25] == 255).all()
    right = legend[25, 50]
    assert right[0] == 255 and right[1] < 10 and right[2] < 10


def test_error_map_endpoints_and_monotone_brightness():
    gt = np.zeros((1, 5, 2))
    pred = np.stack([np.arange(5.0), np.zeros(5)], axis=-1)[None]
    error = endpoint_error(pred, gt)
    assert np.allclose(error[0], np.arange(5.0))
    picture = error_to_rgb(error, max_error=4.0)[0].astype(int)
    assert tuple(picture[0]) == (0, 0, 4) and tuple(picture[-1]) == (252, 255, 164)
    assert (np.diff(picture.sum(axis=1)) > 0).all()
