# sip-router container image.
# Build: docker build -t sip-router .
# Run:   docker run --network host -e ROUTER_ADVERTISE=203.0.113.10 \
#          -e ROUTER_REDIS_URL=redis://redis:6379/0 sip-router
# SIP and RTP need many UDP ports; host networking avoids mapping 10,000 RTP ports.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY router ./router
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
RUN useradd --system --home-dir /var/lib/sip-router --create-home sip-router
COPY --from=build /install /usr/local
COPY sipp-scenarios /usr/share/sip-router/sipp-scenarios
USER sip-router
ENV ROUTER_BIND=0.0.0.0 \
    ROUTER_HTTP_BIND=0.0.0.0 \
    ROUTER_DB_PATH=/var/lib/sip-router/router.db \
    ROUTER_LOG_FORMAT=json
EXPOSE 5060/udp 5060/tcp 8080/tcp 10000-20000/udp
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["sip-router"]
CMD ["run"]
