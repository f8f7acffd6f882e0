"""Package layout for setuptools; the project's metadata lives in pyproject.toml.

schemas/, configs/ and tools/data_check/ stay top-level folders of the
repository (their single source) and are mapped into the wheel under
edgeflownas/_shipped/, so an installed efnas reads its schema, its default
config and the legacy list audit with importlib.resources
(edgeflownas.config.shipped_file).  An editable install reads the same files
from the checkout instead.
"""

from setuptools import find_packages, setup

SHIPPED = {
    "edgeflownas._shipped.schemas": "schemas",
    "edgeflownas._shipped.configs": "configs",
    "edgeflownas._shipped.tools.data_check": "tools/data_check",
}

setup(
    packages=find_packages(include=["edgeflownas*", "launcher*"]) + list(SHIPPED),
    package_dir=SHIPPED,
    package_data={
        "edgeflownas._shipped.schemas": ["*.json"],
        "edgeflownas._shipped.configs": ["*.yaml"],
        "edgeflownas._shipped.tools.data_check": ["*.py"],
        "launcher": ["templates/*.sbatch"],
    },
)
