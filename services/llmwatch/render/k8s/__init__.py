"""The stack's configs as Kubernetes objects, for deploy/k8s's kustomize overlays (deploy/k8s/generate.py lists the
files and writes them). kustomize refuses files outside its folder, so each source is carried inside an object."""
