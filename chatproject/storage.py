"""Static files in production: WhiteNoise's compressed, hashed (manifest) storage.

The page's scripts are native ES modules that import each other by relative
path; Django rewrites those imports to the hashed names too, so a browser
never mixes a new module with an old, cached neighbour.
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
    # Each pass settles one more level of imports (a module's hash depends on
    # its neighbours' hashed names); the page's modules import up to about six
    # deep, Django's default allows five passes.
    max_post_process_passes = 12
