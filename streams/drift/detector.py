"""The drift detector: one camera's frames against its reference profile, episodes with hysteresis.

An episode starts when a CUSUM on an image metric crosses its decision interval, or when the
sliding window's confidence or class-mix PSI, or its uncertain share, crosses the alert level.
It ends only after every metric has stayed back at the reference for `recovery_frames`
consecutive frames, so one lighting change gives one start event and one recovery event.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field

from defectline.config.models import DriftConfig
from defectline.schemas.drift import (
    IMAGE_METRICS,
    Direction,
    DriftCause,
    DriftEvent,
    EventKind,
    Metric,
    ReferenceProfile,
)
from defectline.streams.drift.causes import (
    STD_FLOORS,
    image_cause,
    recovery_message,
    start_message,
)
from defectline.streams.drift.image_stats import detector_values
from defectline.streams.drift.observation import Observation
from defectline.streams.drift.profile import ProfileBuilder
from defectline.streams.drift.psi import class_psi, confidence_bin, fractions, psi
from defectline.streams.drift.state import CameraState, Episode

logger = logging.getLogger(__name__)

LIVE_SOURCE = "live"


@dataclass
class DriftUpdate:
    """What one observation produced: events to publish and a profile learned from live frames."""

    events: list[DriftEvent] = field(default_factory=list)
    learned: ReferenceProfile | None = None
    window: WindowStats | None = None


@dataclass(frozen=True)
class WindowStats:
    """The sliding window against the reference; None while the window is not yet full."""

    confidence_psi: float
    class_psi: float
    uncertain_pp: float
    confidence_mean: float
    first_sequence: int


class DriftDetector:
    """Stateless logic over a `CameraState`: the caller loads the state, observes, stores it."""

    def __init__(self, config: DriftConfig) -> None:
        self.config = config
        self._smoothing = 2.0 / (config.recovery_frames + 1.0)

    def observe(self, state: CameraState, observation: Observation) -> DriftUpdate:
        """Count one frame; frames not newer than the last one counted are replays and skipped."""
        if state.is_replay(observation.captured_at):
            return DriftUpdate()

        profile = state.profile()
        if profile is not None and not _same_model(profile, observation):
            logger.info(
                "model changed, learning a new drift reference camera=%s model=%s:%s",
                observation.camera_id, observation.model_name, observation.model_version,
            )  # fmt: skip
            state.reference = None
            state.episode = None
            profile = None
        if profile is None:
            return DriftUpdate(learned=self._learn(state, observation))

        self._update_window(state, observation)
        self._update_image_detectors(state, profile, observation)
        window = self._window_stats(state, profile)
        episode = state.open_episode()
        if episode is None:
            event = self._check_start(state, profile, observation, window)
        else:
            event = self._check_recovery(state, episode, profile, observation, window)
        return DriftUpdate(events=[event] if event else [], window=window)

    def adopt(self, state: CameraState, profile: ReferenceProfile) -> None:
        """Replace the reference, e.g. after `defectline drift rebuild-reference`."""
        if state.episode is not None:
            logger.info(
                "drift episode closed by a new reference camera=%s episode=%s version=%d",
                profile.camera_id, state.episode["episode_id"], profile.version,
            )  # fmt: skip
        state.set_profile(profile)

    def relearn(self, state: CameraState) -> None:
        """Drop the reference so the next `reference_frames` frames build a new one."""
        state.reference = None
        state.builder = None
        state.episode = None

    # --- learning ---

    def _learn(self, state: CameraState, observation: Observation) -> ReferenceProfile | None:
        builder = state.profile_builder()
        if builder.frames and not _builder_matches(builder, observation):
            # Frames of the previous model do not describe the new one.
            builder = ProfileBuilder()
        builder.add(observation, self.config.uncertain_below)
        state.builder = builder.to_dict()
        if builder.frames < self.config.reference_frames:
            return None

        profile = builder.build(
            observation.camera_id,
            state.reference_version + 1,
            LIVE_SOURCE,
            self.config.uncertain_below,
        )
        state.set_profile(profile)
        logger.info(
            "drift reference learned camera=%s model=%s:%s version=%d frames=%d",
            profile.camera_id, profile.model_name, profile.model_version, profile.version,
            profile.frames,
        )  # fmt: skip
        return profile

    # --- measuring ---

    def _update_window(self, state: CameraState, observation: Observation) -> None:
        uncertain = observation.is_uncertain(self.config.uncertain_below)
        state.window.append(
            [round(observation.confidence, 6), observation.class_name, uncertain,
             observation.sequence]
        )  # fmt: skip
        overflow = len(state.window) - self.config.window_frames
        if overflow > 0:
            del state.window[:overflow]

    def _update_image_detectors(
        self, state: CameraState, profile: ReferenceProfile, observation: Observation
    ) -> None:
        if observation.image_stats is None or not profile.image:
            return
        values = detector_values(observation.image_stats)
        for metric in IMAGE_METRICS:
            summary = profile.image[metric.value]
            value = values[metric]
            z_score = (value - summary.mean) / max(summary.std, STD_FLOORS[metric])

            cusum = state.cusum(metric.value)
            cusum.update(z_score, value, observation.sequence, self.config.cusum_slack_sigma)
            state.cusums[metric.value] = cusum.to_dict()

            previous = state.smoothed.get(metric.value, summary.mean)
            state.smoothed[metric.value] = previous + self._smoothing * (value - previous)

    def _window_stats(self, state: CameraState, profile: ReferenceProfile) -> WindowStats | None:
        if len(state.window) < self.config.window_frames:
            return None
        counts = [0] * len(profile.confidence_fractions)
        classes: Counter[str] = Counter()
        uncertain = 0
        total_confidence = 0.0
        for confidence, class_name, is_uncertain, _sequence in state.window:
            counts[confidence_bin(confidence, profile.confidence_edges)] += 1
            classes[class_name] += 1
            uncertain += bool(is_uncertain)
            total_confidence += confidence
        size = len(state.window)
        return WindowStats(
            confidence_psi=psi(profile.confidence_fractions, fractions(counts)),
            class_psi=class_psi(profile.class_fractions, classes),
            uncertain_pp=(uncertain / size - profile.uncertain_fraction) * 100.0,
            confidence_mean=total_confidence / size,
            first_sequence=state.window[0][3],
        )

    # --- episodes ---

    def _check_start(
        self,
        state: CameraState,
        profile: ReferenceProfile,
        observation: Observation,
        window: WindowStats | None,
    ) -> DriftEvent | None:
        # Each candidate is (severity, onset, cause); severity is the statistic over its alert
        # level, so the cause furthest beyond its own threshold is named first.
        candidates: list[tuple[float, int, DriftCause]] = []
        threshold = self.config.cusum_threshold_sigma
        for metric_name in state.cusums:
            cusum = state.cusum(metric_name)
            reference_mean = profile.image[metric_name].mean
            for side in (cusum.up, cusum.down):
                if side.statistic > threshold and side.raw_count:
                    cause = image_cause(Metric(metric_name), reference_mean, side.onset_mean)
                    candidates.append((side.statistic / threshold, side.onset_sequence, cause))
        if window is not None:
            candidates.extend(self._window_causes(profile, window, state))
        if not candidates:
            return None

        candidates.sort(key=lambda item: item[0], reverse=True)
        causes = [cause for _, _, cause in candidates]
        onset = min(onset for _, onset, _ in candidates)
        state.episodes += 1
        episode = Episode(
            number=state.episodes,
            episode_id=(
                f"{observation.camera_id}/{profile.model_version}/r{profile.version}"
                f"/e{state.episodes}"
            ),
            start_sequence=observation.sequence,
            onset_sequence=onset,
            causes=[cause.model_dump(mode="json") for cause in causes],
        )
        state.episode = asdict(episode)
        confidence_psi = None if window is None else window.confidence_psi
        message = start_message(causes, onset, confidence_psi)
        logger.warning(
            "drift episode started camera=%s episode=%s frame=%s cause=%s",
            observation.camera_id, episode.episode_id, observation.frame_id, message,
        )  # fmt: skip
        return self._event(EventKind.START, episode, profile, observation, causes, message)

    def _window_causes(
        self, profile: ReferenceProfile, window: WindowStats, state: CameraState
    ) -> list[tuple[float, int, DriftCause]]:
        found: list[tuple[float, int, DriftCause]] = []
        alert = self.config.psi_alert
        if window.confidence_psi > alert:
            direction = (
                Direction.DOWN if window.confidence_mean < profile.confidence_mean else Direction.UP
            )
            cause = DriftCause(
                metric=Metric.CONFIDENCE, direction=direction,
                magnitude=round(window.confidence_psi, 4),
                reference_value=profile.confidence_mean, current_value=window.confidence_mean,
            )  # fmt: skip
            found.append((window.confidence_psi / alert, window.first_sequence, cause))
        if window.class_psi > alert:
            cause = DriftCause(
                metric=Metric.CLASS_MIX, direction=Direction.CHANGED,
                magnitude=round(window.class_psi, 4), reference_value=0.0,
                current_value=window.class_psi,
            )  # fmt: skip
            found.append((window.class_psi / alert, window.first_sequence, cause))
        if abs(window.uncertain_pp) > self.config.uncertain_alert_pp:
            reference_pct = profile.uncertain_fraction * 100.0
            cause = DriftCause(
                metric=Metric.UNCERTAIN,
                direction=Direction.UP if window.uncertain_pp > 0 else Direction.DOWN,
                magnitude=round(window.uncertain_pp, 3), reference_value=reference_pct,
                current_value=reference_pct + window.uncertain_pp,
            )  # fmt: skip
            severity = abs(window.uncertain_pp) / self.config.uncertain_alert_pp
            found.append((severity, window.first_sequence, cause))
        return found

    def _check_recovery(
        self,
        state: CameraState,
        episode: Episode,
        profile: ReferenceProfile,
        observation: Observation,
        window: WindowStats | None,
    ) -> DriftEvent | None:
        if self._is_calm(state, profile, window, episode):
            episode.calm_frames += 1
        else:
            episode.calm_frames = 0
        state.episode = asdict(episode)
        if episode.calm_frames < self.config.recovery_frames:
            return None

        causes = [
            self._current_cause(DriftCause.model_validate(data), state, profile, window)
            for data in episode.causes
        ]
        message = recovery_message(
            causes, episode.calm_frames, episode.start_sequence, observation.sequence
        )
        state.episode = None
        state.cusums = {}
        logger.info(
            "drift episode ended camera=%s episode=%s frame=%s",
            observation.camera_id, episode.episode_id, observation.frame_id,
        )  # fmt: skip
        return self._event(EventKind.RECOVERY, episode, profile, observation, causes, message)

    def _is_calm(
        self,
        state: CameraState,
        profile: ReferenceProfile,
        window: WindowStats | None,
        episode: Episode,
    ) -> bool:
        """Tell whether every metric is back: image metrics near the reference, window metrics
        below their recovery level if they caused the episode and below their alert level if not.
        """
        for metric_name, summary in profile.image.items():
            smoothed = state.smoothed.get(metric_name, summary.mean)
            spread = max(summary.std, STD_FLOORS[Metric(metric_name)])
            if abs(smoothed - summary.mean) / spread >= self.config.recover_sigma:
                return False
        if window is None:
            return True

        causes = {cause["metric"] for cause in episode.causes}
        config = self.config
        levels = {
            Metric.CONFIDENCE: (window.confidence_psi, config.psi_recover, config.psi_alert),
            Metric.CLASS_MIX: (window.class_psi, config.psi_recover, config.psi_alert),
            Metric.UNCERTAIN: (
                abs(window.uncertain_pp),
                config.uncertain_alert_pp / 2,
                config.uncertain_alert_pp,
            ),
        }
        for metric, (value, recover_level, alert_level) in levels.items():
            limit = recover_level if metric.value in causes else alert_level
            if value >= limit:
                return False
        return True

    def _current_cause(
        self,
        cause: DriftCause,
        state: CameraState,
        profile: ReferenceProfile,
        window: WindowStats | None,
    ) -> DriftCause:
        """Restate a start cause with the value it has now, for the recovery event."""
        metric = cause.metric
        if metric.value in profile.image:
            summary = profile.image[metric.value]
            current = state.smoothed.get(metric.value, summary.mean)
            return image_cause(metric, summary.mean, current)
        if window is None:
            return cause
        if metric is Metric.CONFIDENCE:
            return cause.model_copy(
                update={
                    "magnitude": round(window.confidence_psi, 4),
                    "current_value": window.confidence_mean,
                }
            )
        if metric is Metric.CLASS_MIX:
            return cause.model_copy(
                update={"magnitude": round(window.class_psi, 4), "current_value": window.class_psi}
            )
        return cause.model_copy(
            update={
                "magnitude": round(window.uncertain_pp, 3),
                "current_value": cause.reference_value + window.uncertain_pp,
            }
        )

    def _event(
        self,
        kind: EventKind,
        episode: Episode,
        profile: ReferenceProfile,
        observation: Observation,
        causes: list[DriftCause],
        message: str,
    ) -> DriftEvent:
        primary = causes[0]
        return DriftEvent(
            kind=kind,
            episode_id=episode.episode_id,
            plant=observation.plant,
            station_id=observation.station_id,
            camera_id=observation.camera_id,
            model_name=profile.model_name,
            model_version=profile.model_version,
            reference_version=profile.version,
            occurred_at=observation.captured_at,
            frame_id=observation.frame_id,
            sequence=observation.sequence,
            onset_sequence=episode.onset_sequence,
            metric=primary.metric,
            direction=primary.direction,
            magnitude=primary.magnitude,
            causes=tuple(causes),
            message=message,
        )


def _same_model(profile: ReferenceProfile, observation: Observation) -> bool:
    return (profile.model_name, profile.model_version) == (
        observation.model_name,
        observation.model_version,
    )


def _builder_matches(builder: ProfileBuilder, observation: Observation) -> bool:
    return (builder.model_name, builder.model_version) == (
        observation.model_name,
        observation.model_version,
    )
