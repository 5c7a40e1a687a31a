"""concerto3d.synth: procedural indoor scans in ScanNet's layout (no torch).

- :mod:`.boxes`: oriented boxes and their overlap test (pure maths).
- :mod:`.materials`: palettes, procedural textures, Lambertian shading.
- :mod:`.scene`: the scene's data model (``Scene``, ``SceneObject``, ``Part``, ``CATEGORY_NYU40``).
- :mod:`.furniture`: furniture builders, boxes in an object's local frame.
- :mod:`.layout`: free-space checks and candidate poses for placing furniture.
- :mod:`.room`: room sampling (:func:`sample_scene`).
- :mod:`.mesh`: dense, coloured, annotated meshes (:func:`build_mesh`).
- :mod:`.render`: colour and Kinect-like depth frames with Open3D's ray caster, camera paths.
- :mod:`.writer`: :func:`generate_dataset`, which writes it all through ``concerto3d.io``.

See docs/synthetic_scenes.md for which classes are told apart by texture and which by shape.
"""

from concerto3d.synth.writer import generate_dataset, generate_scene, scene_name

__all__ = ["generate_dataset", "generate_scene", "scene_name"]
