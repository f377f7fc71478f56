/** @type {import('next').NextConfig} */
const nextConfig = {
  reactStrictMode: true,
  // The suite builds a copy of this folder inside its cache, under the folder
  // that holds node_modules; tell Next.js where the tree's root is so it
  // doesn't go looking for lockfiles above it.
  outputFileTracingRoot: new URL("..", import.meta.url).pathname,
};

export default nextConfig;
