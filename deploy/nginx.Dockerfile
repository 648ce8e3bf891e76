# The `lb` service of docker-compose.yml (profile `scale`): Debian's nginx, unprivileged, config from
# deploy/nginx.conf. Debian rather than the nginx image so that a host without a registry can build it
# from a local bookworm base (--build-arg BASE_IMAGE=localhost/bookworm-python:latest).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/*
COPY nginx.conf /etc/nginx/nginx.conf
USER 33:33
EXPOSE 8080
# www-data (33). SIGQUIT: nginx finishes the requests in flight, then exits.
STOPSIGNAL SIGQUIT
CMD ["nginx"]
