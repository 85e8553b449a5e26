"""The cluster mirror: the Kubernetes client (`client`), its on/off state (`state`), the apply loop portal -> cluster
(`sync`), the read-back cluster -> portal (`readback`) and the writes that come from the cluster (`services`)."""
