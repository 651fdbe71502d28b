"""Grid maths: UTM zones, the exact 3x nesting, the moving square, request tiling."""

import math

import pytest

from satsr.data import grids


@pytest.mark.parametrize("lon, lat, epsg", [(-62.0, -3.5, 32720), (9.1, 45.5, 32632), (179.9, 10, 32660),
                                            (-180, 0, 32601), (138.2, -34.4, 32754)])
def test_utm_epsg(lon, lat, epsg):
    assert grids.utm_epsg(lon, lat) == epsg


@pytest.mark.parametrize("lr_size", [8, 85, 128, 265])
@pytest.mark.parametrize("centre", [(500000.0, 9600000.0), (412345.6, 5043210.9)])
def test_nested_grids_share_origin_and_are_exactly_3x(lr_size, centre):
    lr, hr = grids.nested_grids(*centre, "EPSG:32720", lr_size)
    assert (lr.x0, lr.y0) == (hr.x0, hr.y0)
    assert lr.x0 % 30 == 0 and lr.y0 % 30 == 0  # on the 30 m lattice
    assert (hr.width, hr.height) == (3 * lr.width, 3 * lr.height)
    assert lr.bounds == pytest.approx(hr.bounds)  # identical footprints
    assert lr.pixel == 30 and hr.pixel == 10
    # the centre lies inside, within one LR pixel of the middle
    cx = (lr.bounds[0] + lr.bounds[2]) / 2
    cy = (lr.bounds[1] + lr.bounds[3]) / 2
    assert abs(cx - centre[0]) <= 30 and abs(cy - centre[1]) <= 30
    # every HR pixel edge is an LR pixel edge every 3 px
    assert lr.affine == [30, 0, lr.x0, 0, -30, lr.y0] and hr.affine == [10, 0, lr.x0, 0, -10, lr.y0]


def test_moving_square_line_steps_by_step_factor_times_buffer():
    buffer_m = 3975.0
    centres = grids.moving_square((-62.0, -3.5), 4, buffer_m, 1.95, heading_deg=90.0)
    assert len(centres) == 4
    lat_km_per_deg = grids.KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(-3.5))
    for (lon0, lat0), (lon1, lat1) in zip(centres, centres[1:]):
        assert lat1 == pytest.approx(lat0)
        assert (lon1 - lon0) * lat_km_per_deg == pytest.approx(1.95 * buffer_m / 1000, rel=1e-9)
    north = grids.moving_square((10.0, 45.0), 2, 1000.0, 2.0, heading_deg=0.0)
    assert (north[1][1] - north[0][1]) * grids.KM_PER_DEG_LAT == pytest.approx(2.0)


def test_moving_square_between_two_points_inclusive():
    centres = grids.moving_square((0.0, 0.0), 5, 1000.0, 1.95, end=(1.0, 2.0))
    assert centres[0] == (0.0, 0.0) and centres[-1] == pytest.approx((1.0, 2.0))
    assert centres[2] == pytest.approx((0.5, 1.0))
    with pytest.raises(ValueError):
        grids.moving_square((0, 0), 0, 1.0, 1.0)


def test_split_request_covers_grid_once_under_limits():
    _, hr = grids.nested_grids(500000.0, 9600000.0, "EPSG:32720", 2000)  # 6000 x 6000 px HR
    tiles = grids.split_request(hr, bands=3, bytes_per_px=2, max_bytes=48 * 2**20, max_side=32768)
    assert len(tiles) > 1
    covered = 0
    for col, row, sub in tiles:
        assert sub.width * sub.height * 3 * 2 <= 48 * 2**20
        assert sub.x0 == hr.x0 + col * 10 and sub.y0 == hr.y0 - row * 10
        covered += sub.width * sub.height
    assert covered == hr.width * hr.height
    small = grids.split_request(hr.window(0, 0, 100, 100), 3, 2, 48 * 2**20, 32768)
    assert len(small) == 1


def test_cell_id_groups_nearby_points():
    assert grids.cell_id(100.0, 100.0, "EPSG:1", 1000) == grids.cell_id(900.0, 999.0, "EPSG:1", 1000)
    assert grids.cell_id(100.0, 100.0, "EPSG:1", 1000) != grids.cell_id(1100.0, 100.0, "EPSG:1", 1000)


# ------------------------------------------------------------------------------------ Landsat's own grid
@pytest.mark.parametrize("lon, epsg", [(-52.5, 32622), (48.5, 32639), (-87.2, 32616), (-54.0001, 32621),
                                       (-53.9999, 32622), (179.99, 32660)])
def test_landsat_uses_the_northern_zone_everywhere(lon, epsg):
    assert grids.landsat_epsg(lon) == epsg  # also south of the equator, unlike Sentinel-2
    assert grids.epsg_zone(f"EPSG:{epsg}") == grids.epsg_zone(epsg + 100) == epsg % 100
    assert grids.epsg_zone("EPSG:4326") is None and grids.epsg_zone("bogus") is None


@pytest.mark.parametrize("centre", [(333_211.7, -353_700.2),   # south of the equator, 326xx: negative northing
                                    (478_101.0, 1_647_389.9),  # north
                                    (833_950.0, 5_500_012.0),  # east edge of a zone
                                    (166_040.0, -1_200_033.0)])  # west edge, south
@pytest.mark.parametrize("lr_size", [16, 265])
def test_landsat_grids_put_pixel_centres_on_multiples_of_30_m(centre, lr_size):
    lr, hr = grids.landsat_grids(*centre, "EPSG:32622", lr_size)
    # Collection 2: pixel centres on multiples of 30 m, so edges at 15 (mod 30), negative northings too
    assert lr.x0 % 30 == 15 and lr.y0 % 30 == 15
    assert ((lr.x0 + 15) % 30, (lr.y0 - 15) % 30) == (0, 0)
    assert grids.lattice_offset(lr.x0, lr.y0, 15.0, 15.0, 30.0) == (0.0, 0.0)
    # exact nesting; the HR corner is 5 m off Sentinel-2's edges (multiples of 10 m) in x and y
    assert (hr.x0, hr.y0, hr.width) == (lr.x0, lr.y0, 3 * lr.width) and lr.bounds == hr.bounds
    assert grids.lattice_offset(hr.x0, hr.y0, 300_000.0, 9_800_020.0, 10.0) == (5.0, 5.0)
    assert grids.lattice_offset(hr.x0, hr.y0, 300_000.0, -199_980.0, 10.0) == (5.0, 5.0)  # same in 326xx terms
    cx, cy = (lr.bounds[0] + lr.bounds[2]) / 2, (lr.bounds[1] + lr.bounds[3]) / 2
    assert abs(cx - centre[0]) <= 15 and abs(cy - centre[1]) <= 15


def test_landsat_grids_follow_a_scene_lattice():
    lr, _ = grids.landsat_grids(500_000.0, -300_000.0, "EPSG:32622", 16, lattice=(499_785.0, -100_005.0))
    assert lr.x0 % 30 == 15 and lr.y0 % 30 == 15  # the same lattice, given by a scene corner
    odd, _ = grids.landsat_grids(500_000.0, -300_000.0, "EPSG:32622", 16, lattice=(0.0, 0.0))
    assert odd.x0 % 30 == 0 and odd.y0 % 30 == 0
    assert grids.lattice_offset(odd.x0, odd.y0, 15.0, 15.0, 30.0) == (15.0, 15.0)
