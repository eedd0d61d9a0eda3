# The deploy agent with kubectl, for deploy/kubernetes/registry-agent.yaml:
#
#   docker build -t registry.example.com/harbormaster-registry:0.1.0 .
#   docker build -f deploy/kubernetes/registry-agent.Dockerfile \
#     -t registry.example.com/registry-agent-kubectl:0.1.0 deploy/kubernetes
#
# The project's image already holds `registry-agent`; this adds the kubectl binary of the
# official image (registry.k8s.io/kubectl keeps it at /bin/kubectl).
ARG AGENT_IMAGE=registry.example.com/harbormaster-registry:0.1.0
ARG KUBECTL_IMAGE=registry.k8s.io/kubectl:v1.31.0

FROM ${KUBECTL_IMAGE} AS kubectl

FROM ${AGENT_IMAGE}
COPY --from=kubectl /bin/kubectl /usr/local/bin/kubectl
EXPOSE 9400
CMD ["registry-agent", "--config", "/etc/registry-agent/registry-agent.yaml"]
