"""Test helpers, not test modules: hand-built ONNX graphs, the shared models and paths, the one builder of workflow
definitions, fakes of Roboflow's API, TensorRT / CUDA and ONNX Runtime's provider lists, and the real HTTP server as
a fixture. Test modules import them as ``support.<module>`` (``tests/`` is on ``sys.path``, see pyproject.toml); no
test module imports another test module or ``conftest``.
"""
