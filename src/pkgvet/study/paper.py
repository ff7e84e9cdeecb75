"""The published figures of Guo et al., "An Empirical Study of Malicious Code In PyPI Ecosystem"
(ASE 2023, arXiv:2309.11021), that a study of another dataset can be set beside."""

from __future__ import annotations

CITATION = (
    'W. Guo, Z. Xu, C. Liu, C. Huang, Y. Fang, Y. Liu: "An Empirical Study of Malicious Code '
    'In PyPI Ecosystem", ASE 2023 (arXiv:2309.11021)'
)

# Share of malicious packages with each behaviour (%).
BEHAVIOURS: dict[str, float] = {
    "command_execution": 59.33,
    "information_stealing": 49.44,
    "file_operation": 47.19,
    "code_execution": 2.62,
    "remote_control": 0.75,
}
MULTI_BEHAVIOUR_MIN = 50.0  # "over 50% of malicious code exhibits multiple malicious behaviours"
OBFUSCATION = 7.87
# Trigger point of the malicious code (%).
TRIGGERS: dict[str, float] = {"install": 68.6, "import": 19.0, "runtime": 12.4}
# Removed malicious packages still served by three large mirrors, of 2,035 (%).
MIRRORS_STILL_SERVING = (81.6, 80.5, 66.9)
MIRROR_SAMPLE = 2035
