"""Camera model, transforms, z-buffered LiDAR projection, LiDAR image and registration."""

from __future__ import annotations

import numpy as np
import pytest

from mlesam_ros.geometry import (
    CameraModel,
    check_transform,
    decode_channel,
    dilation_targets,
    encode_channel,
    frustum_candidates,
    homography_at_depth,
    invert_transform,
    lidar_dilation,
    lidar_image,
    make_transform,
    matrix_to_quaternion,
    project_lidar,
    projection,
    quaternion_to_matrix,
    register_depth,
    register_image,
    transform_points,
)
from mlesam_ros.geometry.lidar_dilation import dilate_nearest

RNG = np.random.default_rng(11)
# LiDAR axes (x forward, y left, z up) -> camera optical axes (z forward, x right, y down).
LIDAR_TO_OPTICAL = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
T_CAMERA_FROM_LIDAR = make_transform(LIDAR_TO_OPTICAL, [0.0, 0.0, 0.0])
DISTORTIONS = {
    "plumb_bob": [-0.25, 0.08, 0.001, -0.0015, -0.01],
    "rational_polynomial": [0.4, -0.1, 0.001, 0.002, 0.01, 0.7, -0.05, 0.02],
    "equidistant": [0.05, -0.01, 0.002, -0.0005],
}


def pinhole(width: int = 64, height: int = 48, focal: float = 50.0) -> CameraModel:
    K = [[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]]
    return CameraModel(width, height, K, np.zeros(5), "plumb_bob")


def distorted(model: str, width: int = 80, height: int = 60) -> CameraModel:
    K = [[60.0, 0, 39.2], [0, 61.0, 29.7], [0, 0, 1]]
    return CameraModel(width, height, K, DISTORTIONS[model], model)


def camera_to_lidar(points_camera: np.ndarray) -> np.ndarray:
    return transform_points(invert_transform(T_CAMERA_FROM_LIDAR), points_camera)


def random_cloud(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    azimuth = rng.uniform(-np.pi, np.pi, count)
    elevation = rng.uniform(-0.4, 0.3, count)
    distance = rng.uniform(0.5, 40.0, count)
    return np.stack(
        [
            distance * np.cos(elevation) * np.cos(azimuth),
            distance * np.cos(elevation) * np.sin(azimuth),
            distance * np.sin(elevation),
        ],
        axis=-1,
    ).astype(np.float32)


def test_plane_at_known_depth_lands_on_analytic_pixels() -> None:
    camera = pinhole()
    rows, cols = np.mgrid[0:48, 0:64]
    depth = 4.0
    x = (cols - camera.K[0, 2]) * depth / camera.K[0, 0]
    y = (rows - camera.K[1, 2]) * depth / camera.K[1, 1]
    points_camera = np.stack([x, y, np.full_like(x, depth)], -1).reshape(-1, 3)
    order = RNG.permutation(points_camera.shape[0])
    points = camera_to_lidar(points_camera[order]).astype(np.float32)
    projection = project_lidar(points, T_CAMERA_FROM_LIDAR, camera)
    assert projection.valid.all() and projection.visible.all()
    np.testing.assert_allclose(projection.depth_image(), depth, rtol=1e-6)
    # Each pixel holds exactly the point generated for it.
    expected_index = np.empty(48 * 64, dtype=np.int64)
    expected_index[order] = np.arange(order.size)
    np.testing.assert_array_equal(projection.index_image().reshape(-1), expected_index)
    np.testing.assert_allclose(projection.uv[:, 0], cols.reshape(-1)[order], atol=1e-5)
    np.testing.assert_allclose(projection.uv[:, 1], rows.reshape(-1)[order], atol=1e-5)


def test_zbuffer_nearest_point_wins_whatever_the_order() -> None:
    camera = pinhole()
    rows, cols = np.mgrid[0:48, 0:64]
    uv = np.stack([cols.ravel(), rows.ravel()], -1).astype(np.float64)
    background = camera.unproject(uv, np.full(uv.shape[0], 10.0))
    in_box = (
        (cols.ravel() >= 20) & (cols.ravel() < 40) & (rows.ravel() >= 10) & (rows.ravel() < 30)
    )
    foreground = camera.unproject(uv[in_box], np.full(in_box.sum(), 3.0))
    points_camera = np.concatenate([background, foreground])
    labels = np.concatenate([np.zeros(len(background)), np.ones(len(foreground))])
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(points_camera))
        points = camera_to_lidar(points_camera[order]).astype(np.float32)
        projection = project_lidar(points, T_CAMERA_FROM_LIDAR, camera, values=labels[order])
        depth = projection.depth_image().reshape(-1)
        np.testing.assert_allclose(depth[in_box], 3.0, rtol=1e-6)
        np.testing.assert_allclose(depth[~in_box], 10.0, rtol=1e-6)
        np.testing.assert_array_equal(projection.value_image.reshape(-1), in_box.astype(float))
        # Occluded background points are valid (in view) but not visible.
        occluded = (labels[order] == 0) & np.isin(order, np.flatnonzero(in_box))
        assert projection.valid[occluded].all() and not projection.visible[occluded].any()
        assert projection.visible.sum() == 48 * 64


def test_zbuffer_ties_go_to_the_lowest_index() -> None:
    camera = pinhole()
    point = camera_to_lidar(np.array([[0.0, 0.0, 5.0]]))
    points = np.repeat(point, 4, axis=0).astype(np.float32)
    projection = project_lidar(points, T_CAMERA_FROM_LIDAR, camera)
    np.testing.assert_array_equal(projection.point_index, [0])
    np.testing.assert_array_equal(projection.visible, [True, False, False, False])


def test_culling_behind_out_of_range_outside_and_nan() -> None:
    camera = pinhole()
    points_camera = np.array(
        [
            [0.0, 0.0, 5.0],  # valid
            [0.0, 0.0, -5.0],  # behind
            [0.0, 0.0, 0.05],  # closer than min_depth
            [0.0, 0.0, 150.0],  # beyond max_depth
            [50.0, 0.0, 5.0],  # right of the image
            [np.nan, 0.0, 5.0],  # no return
        ]
    )
    points = camera_to_lidar(points_camera).astype(np.float32)
    projection = project_lidar(points, T_CAMERA_FROM_LIDAR, camera, max_depth=100.0)
    np.testing.assert_array_equal(projection.valid, [True, False, False, False, False, False])
    assert np.isnan(projection.uv[1]).all() and np.isnan(projection.uv[3]).all()
    np.testing.assert_allclose(projection.uv[4], [50 * 50 / 5 + 31.5, 23.5])


def test_far_off_axis_rays_do_not_fold_into_the_image() -> None:
    # With k1 < 0 the plumb_bob polynomial turns around: a ray 60 degrees off axis maps back
    # inside the image (radial factor slightly negative) although the lens cannot see it.
    camera = CameraModel(64, 48, [[80, 0, 31.5], [0, 80, 23.5], [0, 0, 1]], [-0.35, 0, 0, 0, 0])
    slope = 1.75
    folded = camera.project(np.array([[slope, 0.0, 1.0]]))[0]
    assert 0 <= folded[0] < 64, "premise: the raw polynomial folds this ray into the image"
    points = camera_to_lidar(np.array([[slope * 5, 0.0, 5.0], [0.0, 0.0, 5.0]]))
    projection = project_lidar(points.astype(np.float32), T_CAMERA_FROM_LIDAR, camera)
    np.testing.assert_array_equal(projection.valid, [False, True])


@pytest.mark.parametrize("model", list(DISTORTIONS))
def test_distortion_round_trip(model: str) -> None:
    camera = distorted(model)
    xy = RNG.uniform(-0.6, 0.6, (500, 2))
    np.testing.assert_allclose(camera.undistort(camera.distort(xy)), xy, atol=1e-10)
    assert np.abs(camera.distort(xy) - xy).max() > 1e-3  # the lens really distorts
    points = np.concatenate([xy * 7.0, np.full((500, 1), 7.0)], axis=1)
    uv = camera.project(points)
    np.testing.assert_allclose(camera.unproject(uv, points[:, 2]), points, atol=1e-8)


@pytest.mark.parametrize("model", list(DISTORTIONS))
def test_projection_matches_opencv(model: str) -> None:
    cv2 = pytest.importorskip("cv2", reason="OpenCV not installed")
    camera = distorted(model)
    points = np.concatenate([RNG.uniform(-3, 3, (200, 2)), RNG.uniform(4, 9, (200, 1))], 1)
    if model == "equidistant":
        theirs, _ = cv2.fisheye.projectPoints(
            points[:, None], np.zeros(3), np.zeros(3), camera.K, camera.D
        )
    else:
        theirs, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), camera.K, camera.D)
    np.testing.assert_allclose(camera.project(points), theirs[:, 0], atol=1e-6)


def test_rectified_projection_uses_r_and_p() -> None:
    R = quaternion_to_matrix([0.0, 0.02, 0.0, 1.0])
    P = [[55.0, 0, 30.0, -5.5], [0, 55.0, 25.0, 0], [0, 0, 1, 0]]
    camera = CameraModel(
        64, 48, [[50, 0, 31.5], [0, 50, 23.5], [0, 0, 1]], [0.1, 0, 0, 0, 0], R=R, P=P
    )
    points = np.array([[0.5, -0.2, 4.0], [-1.0, 0.3, 6.0]])
    rotated = points @ R.T
    homogeneous = np.concatenate([rotated, np.ones((2, 1))], 1) @ np.asarray(P).T
    expected = homogeneous[:, :2] / homogeneous[:, 2:]
    np.testing.assert_allclose(camera.project(points, rectified=True), expected, atol=1e-12)


@pytest.mark.parametrize("model", ["plumb_bob", "rational_polynomial", "equidistant"])
def test_numpy_and_torch_paths_are_identical(model: str) -> None:
    torch = pytest.importorskip("torch", reason="torch not installed")
    camera = CameraModel(
        160, 120, [[90.0, 0, 80.3], [0, 91.0, 59.6], [0, 0, 1]], DISTORTIONS[model], model
    )
    points = random_cloud(20_000, seed=3)
    T = make_transform(
        LIDAR_TO_OPTICAL @ quaternion_to_matrix([0.01, 0.02, 0.0, 1.0]), [0.1, 0.2, -0.3]
    )
    intensity = RNG.uniform(size=20_000).astype(np.float32)
    expected = project_lidar(points, T, camera, values=intensity)
    assert expected.visible.sum() > 1000
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        got = project_lidar(torch.from_numpy(points).to(device), T, camera, values=intensity)
        assert got.uv.device.type == device
        for name in ("valid", "visible", "point_index", "pixel_index", "depth"):
            np.testing.assert_array_equal(
                getattr(got, name).cpu().numpy(), getattr(expected, name), err_msg=name
            )
        np.testing.assert_array_equal(got.depth_image().cpu().numpy(), expected.depth_image())
        np.testing.assert_array_equal(got.index_image().cpu().numpy(), expected.index_image())
        np.testing.assert_array_equal(got.value_image.cpu().numpy(), expected.value_image)
        # Pixel coordinates of every point that can be in the image (numpy input takes the
        # compiled loop, which leaves them undefined beyond the lens model's cone).
        valid = expected.valid
        np.testing.assert_allclose(got.uv.cpu().numpy()[valid], expected.uv[valid], rtol=0,
                                   atol=1e-9)  # fmt: skip


def test_lidar_image_channels_follow_the_documented_encoding() -> None:
    camera = pinhole()
    points_camera = np.array([[0.0, 0.0, 20.0], [0.0, 0.0, 40.0], [20 * 10 / 50, 0.0, 20.0]])
    points = camera_to_lidar(points_camera).astype(np.float32)
    intensity = np.array([0.5, 1.0, 2.0], dtype=np.float32)
    image = lidar_image(
        points,
        intensity,
        T_CAMERA_FROM_LIDAR,
        camera,
        max_range=80.0,
        intensity_max=1.0,
        height_range=(-3.0, 5.0),
    )
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    # Centre pixel (31.5 -> 32, 23.5 -> 24): the 20 m point occludes the 40 m one.
    np.testing.assert_array_equal(
        image[24, 32], [1 + round(254 * 20 / 80), 1 + 127, 1 + round(254 * 3 / 8)]
    )
    np.testing.assert_array_equal(
        image[24, 42], [1 + round(254 * 20 / 80), 255, 1 + round(254 * 3 / 8)]
    )
    assert np.count_nonzero(image.any(axis=2)) == 2
    np.testing.assert_allclose(decode_channel(image[24, 32, :1], 0, 80), [20.0], atol=80 / 254)
    # Height in a ground frame 1.8 m below the LiDAR.
    ground = make_transform(None, [0.0, 0.0, 1.8])
    image = lidar_image(points, None, T_CAMERA_FROM_LIDAR, camera, T_ground_from_lidar=ground)
    assert image[24, 32, 1] == 0
    assert image[24, 32, 2] == encode_channel(np.array([1.8]), -3.0, 5.0)[0]


def test_lidar_image_dilation_fills_gaps_with_the_nearest_return() -> None:
    camera = pinhole()
    near = camera.unproject(np.array([[20.0, 20.0]]), np.array([5.0]))
    far = camera.unproject(np.array([[22.0, 20.0], [21.0, 30.0]]), np.array([30.0, 30.0]))
    points = camera_to_lidar(np.concatenate([near, far])).astype(np.float32)
    sparse = lidar_image(points, None, T_CAMERA_FROM_LIDAR, camera)
    dense = lidar_image(points, None, T_CAMERA_FROM_LIDAR, camera, dilation=1)
    assert np.count_nonzero(sparse[..., 0]) == 3
    # Original returns are kept; the gap between near and far takes the near value.
    np.testing.assert_array_equal(dense[20, 22], sparse[20, 22])
    np.testing.assert_array_equal(dense[20, 21], sparse[20, 20])
    np.testing.assert_array_equal(dense[19, 19], sparse[20, 20])
    np.testing.assert_array_equal(dense[31, 21], sparse[30, 21])
    assert dense[20, 24, 0] == 0 and dense[25, 25, 0] == 0  # beyond the radius stays empty


def test_register_depth_between_side_by_side_cameras() -> None:
    camera = pinhole(64, 48, 40.0)
    baseline = 0.2
    T_rgb_from_depth = make_transform(None, [baseline, 0.0, 0.0])
    depth = np.full((48, 64), 4.0, dtype=np.float32)
    depth[:, :3] = np.nan  # invalid pixels stay invalid
    registered = register_depth(depth, camera, camera, T_rgb_from_depth)
    shift = baseline * 40.0 / 4.0  # 2 px disparity to the right
    assert np.isnan(registered[:, : int(3 + shift)]).all()
    np.testing.assert_allclose(registered[:, 6:], 4.0, rtol=1e-6)


def test_register_thermal_with_depth_and_by_homography() -> None:
    source = pinhole(64, 48, 40.0)
    rgb = pinhole(80, 60, 50.0)
    T_rgb_from_source = make_transform(quaternion_to_matrix([0, 0.03, 0, 1]), [0.15, 0.0, 0.0])
    plane_depth = 6.0
    # Thermal image of a plane at 6 m (source frame) whose brightness is its X coordinate.
    rows, cols = np.mgrid[0:48, 0:64]
    rays = source.pixels_to_rays(np.stack([cols.ravel(), rows.ravel()], -1))
    thermal = ((rays[:, 0] * plane_depth + 5.0) * 20.0).reshape(48, 64).astype(np.float32)
    # Expected: brightness of the plane point each RGB pixel sees.
    T_source_from_rgb = invert_transform(T_rgb_from_source)
    rgb_rows, rgb_cols = np.mgrid[0:60, 0:80]
    rgb_rays = rgb.pixels_to_rays(np.stack([rgb_cols.ravel(), rgb_rows.ravel()], -1))
    direction = rgb_rays @ T_source_from_rgb[:3, :3].T
    origin = T_source_from_rgb[:3, 3]
    scale = (plane_depth - origin[2]) / direction[:, 2]
    hit = origin + direction * scale[:, None]
    expected = ((hit[:, 0] + 5.0) * 20.0).reshape(60, 80)
    rgb_depth = (scale * rgb_rays[:, 2]).reshape(60, 80)  # z in the RGB frame
    source_uv = source.project(hit)
    inside = ((source_uv >= 0) & (source_uv <= [63, 47])).all(1).reshape(60, 80)
    outside = ((source_uv < -1) | (source_uv > [64, 48])).any(1).reshape(60, 80)
    assert inside.sum() > 1000 and outside.sum() > 100
    warped = register_image(thermal, source, rgb, T_rgb_from_source, rgb_depth_m=rgb_depth)
    # cv2.remap interpolates with 1/32-pixel weights: 3 units/pixel here -> <= 0.1 error.
    np.testing.assert_allclose(warped[inside], expected[inside], atol=0.1)
    assert (warped[outside] == 0).all()
    # The plane homography gives the same mapping for undistorted cameras.
    H = homography_at_depth(source, rgb, T_rgb_from_source, plane_depth)
    source_uv = source.project(hit)
    mapped = np.concatenate([source_uv, np.ones((len(hit), 1))], 1) @ H.T
    np.testing.assert_allclose(
        mapped[:, :2] / mapped[:, 2:],
        np.stack([rgb_cols.ravel(), rgb_rows.ravel()], -1),
        atol=1e-6,
    )


def test_quaternions_and_transforms() -> None:
    for _ in range(20):
        q = RNG.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[3] >= 0 else -q
        R = quaternion_to_matrix(q)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        np.testing.assert_allclose(matrix_to_quaternion(R), q, atol=1e-12)
    np.testing.assert_allclose(
        quaternion_to_matrix([0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)]) @ [1, 0, 0],
        [0, 1, 0],
        atol=1e-12,
    )
    T = make_transform([0.1, 0.2, 0.3, 0.9], [1, 2, 3])
    np.testing.assert_allclose(invert_transform(T) @ T, np.eye(4), atol=1e-12)
    with pytest.raises(ValueError, match="T_x: the 3x3 block is not a rotation"):
        check_transform(np.diag([2.0, 1, 1, 1]), "T_x")
    with pytest.raises(ValueError, match="zero or non-finite norm"):
        quaternion_to_matrix([0, 0, 0, 0])


def test_camera_validation_and_scaling() -> None:
    with pytest.raises(ValueError, match="K is all zeros"):
        CameraModel(10, 10, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="unknown distortion_model 'fisheye62'"):
        CameraModel(10, 10, np.eye(3), np.zeros(5), "fisheye62")
    with pytest.raises(ValueError, match="takes 5 coefficients, got 8"):
        CameraModel(10, 10, np.eye(3), np.ones(8), "plumb_bob")
    camera = distorted("plumb_bob")
    half = camera.scaled(40, 30)
    points = np.concatenate([RNG.uniform(-2, 2, (50, 2)), RNG.uniform(4, 8, (50, 1))], 1)
    # cv2.resize pixel-centre convention: u' = (u + 0.5) * s - 0.5.
    np.testing.assert_allclose(
        half.project(points), (camera.project(points) + 0.5) * 0.5 - 0.5, atol=1e-9
    )
    with pytest.raises(ValueError, match=r"points_xyz: expected \(N, 3\)"):
        project_lidar(np.zeros((4, 2)), np.eye(4), camera)


def test_dilation_matches_a_brute_force_reference() -> None:
    height, width, radius = 12, 15, 2
    rng = np.random.default_rng(8)
    pixel_index = rng.choice(height * width, 25, replace=False)
    depth = rng.uniform(1, 50, 25).astype(np.float32)
    targets, sources = dilation_targets(pixel_index, depth, height, width, radius)
    got = dict(zip(targets.tolist(), sources.tolist(), strict=True))
    occupied = set(pixel_index.tolist())
    for pixel in range(height * width):
        row, col = divmod(pixel, width)
        near = [
            k
            for k, source_pixel in enumerate(pixel_index)
            if abs(source_pixel // width - row) <= radius
            and abs(source_pixel % width - col) <= radius
        ]
        if pixel in occupied or not near:
            assert pixel not in got
        else:
            assert got[pixel] == min(near, key=lambda k: (depth[k], k))


@pytest.mark.parametrize("model", ["pinhole", *DISTORTIONS])
def test_frustum_cull_keeps_everything_the_projection_keeps(model: str) -> None:
    """Projecting only the culled points gives the same projection as projecting them all."""
    camera = pinhole(160, 120, 90.0) if model == "pinhole" else distorted(model, 160, 120)
    T = make_transform(
        LIDAR_TO_OPTICAL @ quaternion_to_matrix([0.01, 0.02, 0.0, 1.0]), [0.1, 0.2, -0.3]
    )
    points = random_cloud(30_000, seed=5).astype(np.float32)
    # Points exactly on the image border rays, near the camera, and not finite.
    rays = camera.pixels_to_rays(np.array([[-0.5, 10.0], [159.49, 60.0], [80.0, -0.5]]))
    border = camera_to_lidar(rays * 12.0)
    points = np.concatenate([points, border.astype(np.float32),
                             camera_to_lidar(np.array([[0.0, 0.0, 0.05]])).astype(np.float32),
                             np.full((2, 3), np.nan, np.float32)])  # fmt: skip
    kept = frustum_candidates(points, T, camera, min_depth=0.1)
    full = project_lidar(points, T, camera)
    assert set(np.flatnonzero(full.valid)) <= set(kept)
    assert kept.size < 0.5 * points.shape[0]  # it does cull: a camera sees a slice of a sweep
    assert not np.isin(points.shape[0] - np.arange(1, 4), kept).any()  # near and NaN points
    part = project_lidar(points[kept], T, camera)
    np.testing.assert_array_equal(kept[part.point_index], full.point_index)
    np.testing.assert_array_equal(part.pixel_index, full.pixel_index)
    np.testing.assert_array_equal(part.depth_image(), full.depth_image())
    np.testing.assert_array_equal(kept[part.candidates], full.candidates)
    np.testing.assert_array_equal(part.nearest, full.nearest)
    assert frustum_candidates(np.zeros((0, 3), np.float32), T, camera).size == 0


@pytest.mark.parametrize("compiled_loop", [True, False])
def test_dense_dilation_breaks_depth_ties_by_the_first_shift_in_row_major_order(
    compiled_loop, monkeypatch
) -> None:
    """Both the compiled loop and the numpy min filter (numba absent) follow the rule."""

    if compiled_loop and lidar_dilation.dilation_kernels() is None:
        pytest.skip("numba not installed")
    if not compiled_loop:
        monkeypatch.setattr(lidar_dilation, "dilation_kernels", lambda: None)

    rng = np.random.default_rng(8)
    for radius in (1, 2):
        depth = np.where(rng.random((9, 11)) < 0.3, rng.integers(1, 3, (9, 11)), 0)
        depth = depth.astype(np.float32)  # two depth values: many exact ties
        image = np.where(depth[..., None] > 0, rng.integers(1, 256, (9, 11, 3)), 0)
        image = image.astype(np.uint8)
        expected = image.copy()
        for row, col in zip(*np.nonzero(depth == 0), strict=True):
            best = None
            for dy in range(-radius, radius + 1):  # row-major: the first strict minimum wins
                for dx in range(-radius, radius + 1):
                    r, c = row + dy, col + dx
                    inside = 0 <= r < 9 and 0 <= c < 11 and depth[r, c] > 0
                    if inside and (best is None or depth[r, c] < depth[best]):
                        best = (r, c)
            if best is not None:
                expected[row, col] = image[best]
        np.testing.assert_array_equal(dilate_nearest(image, depth, radius), expected)


@pytest.mark.parametrize("model", list(DISTORTIONS))
def test_strided_pixel_rays_equal_the_full_table(model: str) -> None:
    camera = distorted(model, 97, 61)
    for stride in (1, 2, 5, 7):
        rays = camera.pixel_rays_every(stride)
        assert rays.flags.c_contiguous
        np.testing.assert_array_equal(rays, camera.pixel_rays[::stride, ::stride])
    assert camera.pixel_rays_every(5) is camera.pixel_rays_every(5)  # cached


@pytest.mark.parametrize("model", ["pinhole", "plumb_bob", "rational_polynomial"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_projection_equals_the_numpy_passes(model, dtype, monkeypatch) -> None:
    """The numba loop (beside the numpy passes in geometry.projection) reproduces them."""

    if projection._projection_kernels() is None:
        pytest.skip("numba not installed: only the numpy passes exist")
    camera = pinhole(160, 120, 90.0) if model == "pinhole" else distorted(model, 160, 120)
    T = make_transform(
        LIDAR_TO_OPTICAL @ quaternion_to_matrix([0.01, 0.02, 0.0, 1.0]), [0.1, 0.2, -0.3]
    )
    points = random_cloud(30_000, seed=6).astype(dtype)
    points[:3] = np.nan
    values = np.arange(points.shape[0])
    assert projection.compiled_supports(camera, points, rectified=False)
    fast = project_lidar(points, T, camera, values=values, max_depth=35.0)
    monkeypatch.setattr(projection, "_projection_kernels", lambda: None)
    reference = project_lidar(points, T, camera, values=values, max_depth=35.0)
    assert reference.visible.sum() > 1000
    for name in ("depth", "nearest"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(reference, name), name)
    # Pixel coordinates: equal wherever a point can be in the image; beyond the lens model's
    # cone the compiled loop leaves them undefined (NaN) instead of distorting them.
    valid = reference.valid
    np.testing.assert_array_equal(fast.uv[valid], reference.uv[valid])
    defined = np.isfinite(fast.uv[:, 0])
    np.testing.assert_array_equal(fast.uv[defined], reference.uv[defined])
    assert np.isnan(reference.uv[~np.isfinite(reference.uv[:, 0])]).all()
    for name in ("valid", "visible", "point_index", "pixel_index", "candidates", "value_image"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(reference, name), name)
