"""Static files in production: WhiteNoise's compressed, hashed (manifest) storage.

The page's scripts are native ES modules that import each other by relative
path; Django rewrites those imports to the hashed names too, so a browser
never mixes a new module with an old, cached neighbour.
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
