"""Config checks of model families that run without importing JAX or TensorFlow.

`jaxgan.families.validate_config` calls `jaxgan.config_checks.<family>.validate` when that module
exists, so that `jaxgan.main` can reject an invalid value within about a second. The family's
own `validate` calls the same function.
"""
