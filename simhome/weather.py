"""Weather and daylight of the simulated home: pure, vectorized functions of UTC epoch seconds and a seed.

Outdoor temperature = seasonal mean + diurnal cycle + slow random anomaly (sum of sinusoids with seeded
periods and phases) + summer heat waves (seeded per year). Daylight comes from the sun's elevation at the
home's latitude/longitude (Brussels) damped by cloudiness, so day length follows the seasons. Nothing here
keeps state: any instant can be evaluated on its own, which keeps history and live stream consistent.
"""

from __future__ import annotations

import numpy as np

LATITUDE_DEG = 50.85
LONGITUDE_DEG = 4.35
DAY = 86400.0
YEAR_DAYS = 365.2425
EPOCH_2000 = 946684800.0  # 2000-01-01T00:00:00Z

_SEASON_MEAN, _SEASON_AMP, _COLDEST_DOY = 11.0, 7.5, 20.0


def day_of_year(t: np.ndarray) -> np.ndarray:
    """Fractional day of year (0 = Jan 1, UTC) for epoch seconds, accurate to a few hours (no calendar)."""
    days = (np.asarray(t, dtype=np.float64) - EPOCH_2000) / DAY
    return np.mod(days, YEAR_DAYS)


def season_cos(t: np.ndarray) -> np.ndarray:
    """+1 in the coldest week (late January), -1 in the warmest (late July)."""
    return np.cos(2 * np.pi * (day_of_year(t) - _COLDEST_DOY) / YEAR_DAYS)


def sun_elevation_sin(t: np.ndarray) -> np.ndarray:
    """Sine of the sun's elevation at the home (declination + equation of time approximation)."""
    t = np.asarray(t, dtype=np.float64)
    n = day_of_year(t)
    decl = np.deg2rad(23.44) * np.sin(2 * np.pi * (284.0 + n) / 365.0)
    b = 2 * np.pi * (n - 81.0) / 364.0
    eot_min = 9.87 * np.sin(2 * b) - 7.53 * np.cos(b) - 1.5 * np.sin(b)
    utc_hours = np.mod(t, DAY) / 3600.0
    solar_hours = utc_hours + LONGITUDE_DEG / 15.0 + eot_min / 60.0
    hour_angle = np.deg2rad(15.0 * (solar_hours - 12.0))
    lat = np.deg2rad(LATITUDE_DEG)
    return np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)


def _noise_params(seed: int, stream: int, periods_days: tuple[float, float], k: int):
    rng = np.random.default_rng([seed, 7_000 + stream])
    periods = np.exp(rng.uniform(np.log(periods_days[0]), np.log(periods_days[1]), size=k)) * DAY
    phases = rng.uniform(0, 2 * np.pi, size=k)
    amps = rng.uniform(0.5, 1.0, size=k)
    amps = amps / np.sqrt(np.sum(amps**2) / 2.0)  # unit standard deviation overall
    return periods, phases, amps


def smooth_noise(t: np.ndarray, seed: int, stream: int, periods_days: tuple[float, float], k: int = 8):
    """Zero-mean, unit-std smooth random signal of time (sum of k sinusoids with seeded periods)."""
    periods, phases, amps = _noise_params(seed, stream, periods_days, k)
    t = np.asarray(t, dtype=np.float64)
    arg = 2 * np.pi * np.mod(t[..., None], periods) / periods + phases  # [..., k]
    return np.sum(amps * np.sin(arg), axis=-1)


def _heat_waves(year: int, seed: int) -> list[tuple[float, float, float]]:
    """(centre day-of-year, half-width days, peak °C) of this year's summer heat waves."""
    rng = np.random.default_rng([seed, 7_100, year])
    n = int(rng.integers(1, 4))
    return [
        (float(rng.uniform(160, 235)), float(rng.uniform(1.5, 3.5)), float(rng.uniform(5.0, 9.0)))
        for _ in range(n)
    ]


def heat_wave_bump(t: np.ndarray, seed: int) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    out = np.zeros_like(t)
    years = 2000 + np.floor((t - EPOCH_2000) / DAY / YEAR_DAYS).astype(np.int64)
    doy = day_of_year(t)
    for year in np.unique(years):
        sel = years == year
        for centre, half, peak in _heat_waves(int(year), seed):
            out[sel] += peak * np.exp(-0.5 * ((doy[sel] - centre) / half) ** 4)
    return out


def cloudiness(t: np.ndarray, seed: int) -> np.ndarray:
    """Cloud cover 0..1 (more in winter), smooth over hours to days."""
    z = 0.8 * smooth_noise(t, seed, 1, (0.4, 6.0)) + 0.5 * season_cos(t)
    return 1.0 / (1.0 + np.exp(-1.6 * z))


def outdoor_temperature(t: np.ndarray, seed: int) -> np.ndarray:
    """Outdoor air temperature in °C."""
    t = np.asarray(t, dtype=np.float64)
    seasonal = _SEASON_MEAN - _SEASON_AMP * season_cos(t)
    cloud = cloudiness(t, seed)
    local_solar_h = np.mod(t / 3600.0 + LONGITUDE_DEG / 15.0, 24.0)
    diurnal_amp = (4.0 - 1.2 * season_cos(t)) * (1.0 - 0.5 * cloud)
    diurnal = diurnal_amp * np.cos(2 * np.pi * (local_solar_h - 15.0) / 24.0)
    anomaly = 3.0 * smooth_noise(t, seed, 2, (2.0, 30.0))
    return seasonal + diurnal + anomaly + heat_wave_bump(t, seed)


def outdoor_lux(t: np.ndarray, seed: int) -> np.ndarray:
    """Horizontal outdoor illuminance in lux (0 at night, ~100 klx clear summer noon)."""
    s = sun_elevation_sin(t)
    clear = 110_000.0 * np.clip(s + 0.03, 0.0, None) ** 1.15  # +0.03: civil twilight
    return clear * (1.0 - 0.78 * cloudiness(t, seed))
